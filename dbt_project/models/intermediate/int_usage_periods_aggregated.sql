{{
    config(
        materialized=merged_aggregate_materialization(),
        incremental_strategy='delete+insert',
        unique_key=['customer_id', 'meter', 'period_start'],
        on_schema_change='append_new_columns',
    )
}}

-- Quantity per customer, meter and period that has events. Incremental runs merge only the new
-- events into the customer-meter-periods they touch (cost follows new data, not history).

with events as {{ not_materialized() }} (
    select * from {{ ref('int_usage_events_metered') }}
),

{{ merged_metered_aggregate(['customer_id', 'meter', 'period_start'], ['period_index', 'period_end', 'aggregation']) }}

select
    customer_id,
    meter,
    period_index,
    period_start,
    period_end,
    aggregation,
    quantity,
    event_count,
    last_event_at,
    max_landing_run_id,
    last_receipt
from merged

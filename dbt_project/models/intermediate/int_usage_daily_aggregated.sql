{{
    config(
        materialized=merged_aggregate_materialization(),
        incremental_strategy='delete+insert',
        unique_key=['customer_id', 'meter', 'usage_date'],
        on_schema_change='append_new_columns',
    )
}}

-- Usage per customer, meter and UTC day, under the meter's aggregation, with what an incremental
-- run needs to merge new events into it (last_receipt). Published as marts.fct_usage_daily.

with events as {{ not_materialized() }} (
    select *, {{ utc_naive('event_ts') }}::date as usage_date  -- the UTC day, whatever the session's time zone
    from {{ ref('int_usage_events_metered') }}
),

{{ merged_metered_aggregate(['customer_id', 'meter', 'usage_date'], ['aggregation']) }}

select
    customer_id,
    meter,
    usage_date,
    aggregation,
    quantity,
    event_count,
    last_event_at,
    max_landing_run_id,
    last_receipt
from merged

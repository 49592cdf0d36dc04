{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['customer_id', 'meter', 'period_start'],
    )
}}

-- Quantity per customer, meter and period that has events. Incremental runs re-aggregate only
-- the customer-meter-periods that received new events (cost follows new data, not history).

with events as (
    select * from {{ ref('int_usage_events_metered') }}
),

{{ events_in_affected_groups(['customer_id', 'meter', 'period_start']) }}

select
    customer_id,
    meter,
    period_index,
    period_start,
    period_end,
    aggregation,
    {{ metered_quantity() }} as quantity,
    count(*) as event_count,
    max(event_ts) as last_event_at,
    max(landing_run_id) as max_landing_run_id
from in_scope
group by customer_id, meter, period_index, period_start, period_end, aggregation

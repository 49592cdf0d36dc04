{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['customer_id', 'meter', 'usage_date'],
    )
}}

-- Usage per customer, meter and UTC day, under the meter's aggregation. Incremental runs
-- re-aggregate only the customer-meter-days that received new events.

with events as (
    select *, (event_ts::timestamp)::date as usage_date
    from {{ ref('int_usage_events_metered') }}
),

{{ events_in_affected_groups(['customer_id', 'meter', 'usage_date']) }}

select
    customer_id,
    meter,
    usage_date,
    {{ metered_quantity() }} as quantity,
    count(*) as event_count,
    max(landing_run_id) as max_landing_run_id
from in_scope
group by customer_id, meter, usage_date, aggregation

{{ config(materialized='view') }}

-- Usage per customer, meter and UTC day, under the meter's aggregation (a view over the
-- incremental intermediate table, which merges new events into the days they touch).

select
    customer_id,
    meter,
    usage_date,
    quantity,
    event_count,
    max_landing_run_id
from {{ ref('int_usage_daily_aggregated') }}

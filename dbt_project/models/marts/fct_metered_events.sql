{{ config(materialized='view') }}

-- Every event behind every invoice line (a view over the incremental intermediate table).

select
    customer_id,
    meter,
    period_start,
    period_end,
    event_id,
    value,
    source_file,
    line_number,
    event_ts,
    value_key,
    landing_run_id
from {{ ref('int_usage_events_metered') }}

{#- A table on Spark: the pipeline copies the tables that Spark builds into the warehouse file, where the
    steps after dbt read the kept events (metering_dagster/transform/spark_marts.py). -#}
{{ config(materialized='table' if target.type == 'spark' else 'view') }}

-- The valid events, one per event_id: the first in receipt order wins (earlier landing run,
-- then file path, then line). Quarantined copies never compete, so a valid later copy of a
-- quarantined event counts. Later copies are reported by rpt_duplicate_events. Which copy is kept is
-- decided when its line is validated (int_usage_lines_validated.is_kept): no table of its own to write.

select
    event_id,
    customer_id,
    action,
    event_ts,
    landing_run_id,
    landed_at,
    source_file,
    line_number,
    payload_hash
from {{ ref('int_usage_lines_validated') }}
where is_kept

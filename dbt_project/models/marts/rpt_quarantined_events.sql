{{ config(materialized='incremental', incremental_strategy=append_strategy()) }}

-- Every line that failed a check, with its file, line, raw text and the first reason.

with quarantined as (
    select *
    from {{ ref('int_usage_lines_validated') }}
    where quarantine_reason is not null
    {% if is_incremental() %}
        and landing_run_id > {{ landed_after_this() }}
    {% endif %}
),

lines as (
    select landing_run_id, source_file, line_number, raw_line
    from {{ ref('stg_raw__usage_lines') }}
    {% if is_incremental() %}
        where landing_run_id > {{ landed_after_this() }}  -- raw_line is wide: read only the new runs
    {% endif %}
)

select
    quarantined.source_file,
    quarantined.line_number,
    quarantined.event_id,
    quarantined.quarantine_reason as reason,
    lines.raw_line,
    quarantined.quarantine_detail as reason_detail,
    quarantined.customer_id,
    quarantined.landing_run_id,
    quarantined.landed_at
from quarantined
inner join lines
    on quarantined.landing_run_id = lines.landing_run_id
    and quarantined.source_file = lines.source_file
    and quarantined.line_number = lines.line_number

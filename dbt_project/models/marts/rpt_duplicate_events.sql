{{ config(materialized='incremental', incremental_strategy=append_strategy()) }}

-- Valid later copies of a kept event (same event_id). A copy is a conflict when anything in
-- its content differs from the kept one (compared on the parsed JSON, numbers as written).

with valid as (
    select *
    from {{ ref('int_usage_lines_validated') }}
    where quarantine_reason is null
    {% if is_incremental() %}
        and landing_run_id > {{ landed_after_this() }}
    {% endif %}
),

kept as (
    select * from {{ ref('int_usage_events_deduplicated') }}
    {% if is_incremental() %}
    where event_id in (select event_id from valid)  -- only the kept copies of the new lines' ids
    {% endif %}
)

select
    valid.event_id,
    kept.source_file || ':' || kept.line_number as kept_source,
    valid.source_file || ':' || valid.line_number as duplicate_source,
    valid.payload_hash <> kept.payload_hash as is_conflict,
    kept.source_file as kept_source_file,
    kept.line_number as kept_line_number,
    valid.source_file as duplicate_source_file,
    valid.line_number as duplicate_line_number,
    valid.landing_run_id
from valid
inner join kept
    on valid.event_id = kept.event_id
    and not (valid.source_file = kept.source_file and valid.line_number = kept.line_number)

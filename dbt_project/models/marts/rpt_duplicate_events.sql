{{ config(materialized='incremental', incremental_strategy=append_strategy()) }}

-- Valid later copies of a kept event (same event_id). A copy is a conflict when anything in
-- its content differs from the kept one (compared on the parsed JSON, numbers as written).

with valid as (
    -- the valid lines that are not their event's kept copy
    select *
    from {{ ref('int_usage_lines_validated') }}
    where quarantine_reason is null and not is_kept
    {% if is_incremental() %}
        and landing_run_id > {{ landed_after_this() }}
    {% endif %}
),

kept as (
    -- only the kept copies of those lines' ids (not a join of every valid line with every kept event)
    select kept_events.*
    from {{ ref('int_usage_events_deduplicated') }} as kept_events
    where kept_events.event_id in (select valid.event_id from valid)
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

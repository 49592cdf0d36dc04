{{ config(materialized='incremental', incremental_strategy=append_strategy()) }}

-- The valid events, one per event_id: the first in receipt order wins (earlier landing run,
-- then file path, then line). Quarantined copies never compete, so a valid later copy of a
-- quarantined event counts. Later copies are reported by rpt_duplicate_events.

with new_valid as (
    select *
    from {{ ref('int_usage_lines_validated') }}
    where quarantine_reason is null
    {% if is_incremental() %}
        and landing_run_id > {{ landed_after_this() }}
    {% endif %}
),

valid as (
    select * from new_valid
    {% if is_incremental() %}
    -- an event kept by an earlier run stays kept, however late its copy arrives; the lookup is
    -- limited to the new batch's ids so it does not hash every kept id
    {{ anti_join() }} (
        select event_id from {{ this }} where event_id in (select event_id from new_valid)
    ) as kept using (event_id)
    {% endif %}
),

ranked as (
    select
        *,
        row_number() over (
            partition by event_id order by landing_run_id, source_file, line_number
        ) as receipt_rank
    from valid
)

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
from ranked
where receipt_rank = 1

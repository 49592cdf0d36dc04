{{ config(materialized='incremental', incremental_strategy=append_strategy()) }}

-- Every landed line with its event timestamp in UTC; if it fails a check, the first quarantine reason
-- in a fixed order (NULL = valid); and whether it is the kept copy of its event (`is_kept`): the first
-- valid copy of its event_id in receipt order (earlier landing run, then file path, then line).
-- Quarantined copies never compete, so a valid later copy of a quarantined event counts; an event kept
-- by an earlier run stays kept, however late its copy arrives. Validating and deduplicating are one
-- pass over the new lines (dbt_project/DECISIONLOG.md): int_usage_events_deduplicated is a view of the
-- kept lines, rpt_duplicate_events reports the other valid ones.

with lines as {{ not_materialized() }} (  -- read again by kept_before: inlined, not copied
    select *
    from {{ ref('stg_raw__usage_lines') }}
    {% if is_incremental() %}
        where landing_run_id > {{ landed_after_this() }}
    {% endif %}
),

settings as (
    select * from {{ ref('stg_contract__settings') }}
),

customers as (
    select * from {{ ref('stg_contract__customers') }}
),

-- customers that were in the contract once: their lines are told apart from unknown ids
contracted as (
    select * from {{ ref('int_customers_contracted') }}
),

metered_actions as (
    select distinct action from {{ ref('stg_contract__meters') }}
),

value_problems as (
    select
        source_file,
        line_number,
        {{ text_agg_ordered_by("'meter ' || meter || ': ' || value_problem", "'; '", 'meter') }} as value_problem,
        min(value_reason) as value_reason  -- invalid_value before value_out_of_range
    from {{ ref('int_usage_line_meters_valued') }}
    where value_problem is not null
    {% if is_incremental() %}
        and landing_run_id > {{ landed_after_this() }}
    {% endif %}
    group by all
),

timed as (
    select
        *,
        case
            when timestamp_type = 'number' and {{ matches_fully('timestamp_text', '-?\\d{1,11}') }}
                then {{ instant_from_unix_seconds('timestamp_text::bigint') }}
            -- RFC 3339: hours 00-23 and minutes 00-59, in the time and in the offset (DuckDB reads
            -- +99:99 as an offset of four days, and 24:00 as the next day)
            when timestamp_type = 'string'
                and {{ matches_fully(
                    'timestamp_text',
                    '\\d{4}-\\d{2}-\\d{2}[Tt ]([01]\\d|2[0-3]):[0-5]\\d:\\d{2}(\\.\\d+)?([Zz]|[+-]([01]\\d|2[0-3]):[0-5]\\d)'
                ) }}
                then try_cast(
                        regexp_replace(upper(timestamp_text), '(\.\d{6})\d+', {{ regex_group_1() }})
                        as {{ instant_type() }}
                    )
        end as event_ts
    from lines
),

checked as (
    select
        timed.landing_run_id,
        timed.landed_at,
        timed.source_file,
        timed.line_number,
        timed.event_id,
        timed.customer_id,
        timed.action,
        timed.event_ts,
        md5(timed.payload::{{ text_type() }}) as payload_hash,
        case
            when timed.landing_problem is not null then timed.landing_problem
            when not timed.is_json_object then 'invalid_json'
            when coalesce(timed.event_id_type, 'null') = 'null'
                or coalesce(timed.timestamp_type, 'null') = 'null'
                or coalesce(timed.customer_id_type, 'null') = 'null'
                or coalesce(timed.action_type, 'null') = 'null'
                then 'missing_field'
            when timed.event_id_type <> 'string' or length(timed.event_id) not between 1 and 100
                or timed.customer_id_type <> 'string' or length(timed.customer_id) not between 1 and 100
                or timed.action_type <> 'string' or length(timed.action) not between 1 and 100
                then 'invalid_field'
            when timed.event_ts is null then 'invalid_timestamp'
            when timed.event_ts > timed.landed_at + {{ seconds_interval(var('future_tolerance_seconds')) }}
                then 'timestamp_in_future'
            when coalesce(timed.environment_type, 'null') <> 'null'
                and (timed.environment_type <> 'string' or timed.environment <> settings.environment)
                then 'wrong_environment'
            when customers.customer_id is null and contracted.customer_id is not null then 'customer_not_in_contract'
            when customers.customer_id is null then 'unknown_customer'
            when timed.event_ts < customers.billing_anchor then 'before_first_period'
            when metered_actions.action is null then 'unmetered_action'
            when value_problems.value_problem is not null then value_problems.value_reason
        end as quarantine_reason,
        value_problems.value_problem,
        customers.billing_anchor,
        -- which required fields are absent or null, and what is wrong with the ones present (for the detail)
        concat_ws(
            ', ',
            case when coalesce(timed.event_id_type, 'null') = 'null' then 'event_id' end,
            case when coalesce(timed.timestamp_type, 'null') = 'null' then 'timestamp' end,
            case when coalesce(timed.customer_id_type, 'null') = 'null' then 'customer_id' end,
            case when coalesce(timed.action_type, 'null') = 'null' then 'action' end
        ) as missing_fields,
        concat_ws(
            '; ',
            {%- for field in ['event_id', 'customer_id', 'action'] %}
                case
                    when timed.{{ field }}_type <> 'string'
                        then '{{ field }} is a JSON ' || timed.{{ field }}_type || ', not a string'
                    when length(timed.{{ field }}) = 0 then '{{ field }} is empty'
                    when length(timed.{{ field }}) > 100
                        then '{{ field }} has ' || length(timed.{{ field }}) || ' characters, more than 100'
                end{{ ',' if not loop.last }}
            {%- endfor %}
        ) as field_problems,
        left(timed.timestamp_text, 100) as timestamp_text,
        left(timed.environment, 100) as environment,
        settings.environment as contract_environment
    from timed
    cross join settings
    left join customers on timed.customer_id = customers.customer_id
    left join contracted on timed.customer_id = contracted.customer_id
    left join metered_actions on timed.action = metered_actions.action
    left join value_problems
        on timed.source_file = value_problems.source_file
        and timed.line_number = value_problems.line_number
),

validated as (
    select
        {{ star_except([
            'value_problem', 'billing_anchor', 'missing_fields', 'field_problems', 'timestamp_text', 'environment',
            'contract_environment',
        ]) }},
        case quarantine_reason
            when 'missing_field' then 'missing or null: ' || missing_fields
            when 'invalid_field' then field_problems
            when 'invalid_timestamp'
                then 'timestamp ' || coalesce({{ json_quoted('timestamp_text') }}, 'null')
                    || ' is not an RFC 3339 time with an offset (2026-10-05T10:00:00Z) nor Unix seconds'
            when 'wrong_environment'
                then 'environment ' || coalesce({{ json_quoted('environment') }}, 'null')
                    || ', the contract says ' || contract_environment
            when 'unknown_customer' then 'customer_id ' || {{ json_quoted('customer_id') }} || ' is not in the contract'
            when 'unmetered_action' then 'no meter of the contract counts the action ' || {{ json_quoted('action') }}
            when 'invalid_value' then value_problem
            when 'value_out_of_range' then value_problem
            when 'before_first_period'
                then 'before the first billing period, which starts at the anchor '
                    || {{ utc_text('billing_anchor') }}
            when 'customer_not_in_contract'
                then 'the customer was in the contract and is no longer: '
                    || 'its usage is not billed (put it back to bill it)'
            when 'timestamp_in_future' then 'more than {{ var("future_tolerance_seconds") }} s after landing'
        end as quarantine_detail
    from checked
),

{% if is_incremental() %}
kept_before as (
    -- the ids of the new lines that an earlier run kept (a lookup of the new ids only, not of every kept id)
    select distinct event_id from {{ this }}
    where is_kept and event_id in (select event_id from lines)
),
{% endif %}

ranked as (
    select
        *,
        row_number() over (
            partition by event_id, quarantine_reason is null order by landing_run_id, source_file, line_number
        ) as receipt_rank
    from validated
)

select
    {{ star_except(['receipt_rank'], 'ranked') }},
    coalesce(
        ranked.quarantine_reason is null and ranked.receipt_rank = 1
        {% if is_incremental() %}
            and kept_before.event_id is null
        {% endif %},
        false
    ) as is_kept
from ranked
{% if is_incremental() %}
    left join kept_before on ranked.event_id = kept_before.event_id
{% endif %}

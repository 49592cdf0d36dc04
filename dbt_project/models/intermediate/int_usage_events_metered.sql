{{ config(materialized='incremental', incremental_strategy=append_strategy()) }}

-- Each kept event x meter it feeds, with its value and the billing period that contains it:
-- [anchor + k months, anchor + k+1 months), an event exactly at a start belongs to that period.

with events as (
    select *
    from {{ ref('int_usage_events_deduplicated') }}
    {% if is_incremental() %}
        where landing_run_id > {{ landed_after_this() }}
    {% endif %}
),

values_ as (
    select * from {{ ref('int_usage_line_meters_valued') }}
    {% if is_incremental() %}
        where landing_run_id > {{ landed_after_this() }}
    {% endif %}
),

customers as (
    select * from {{ ref('stg_contract__customers') }}
),

joined as (
    select
        events.customer_id,
        values_.meter,
        values_.aggregation,
        events.event_id,
        events.event_ts,
        values_.value,
        values_.value_key,
        events.landing_run_id,
        events.source_file,
        events.line_number,
        customers.billing_anchor,
        {{ period_index('customers.billing_anchor', 'events.event_ts') }} as period_index
    from events
    inner join values_
        on events.source_file = values_.source_file
        and events.line_number = values_.line_number
    inner join customers on events.customer_id = customers.customer_id
)

select
    {{ star_except(['billing_anchor']) }},
    {{ period_start('billing_anchor', 'period_index') }} as period_start,
    {{ period_start('billing_anchor', 'period_index + 1') }} as period_end
from joined

{#-
  The quantity of a group of metered events under the meter's aggregation (contract `aggregation`).
  Must be used in a query grouped by the aggregation column. last_*: the latest event timestamp
  wins; on a tie, the later receipt (landing run, file, line) wins, as Stripe's `last` keeps the
  last event it received.
-#}
{% macro metered_quantity(aggregation='aggregation') -%}
    case {{ aggregation }}
        when 'sum' then sum(value)
        when 'count' then count(*)
        when 'max' then max(value)
        when 'unique_count' then count(distinct value_key)
        else arg_max(value, struct_pack(event_ts, landing_run_id, source_file, line_number))
    end::decimal(38, 12)
{%- endmacro %}

{#- Upper bound of what an incremental model already holds, for `where landing_run_id > ...`. -#}
{% macro landed_after_this(column='landing_run_id') -%}
    (select coalesce(max({{ column }}), 0) from {{ this }})
{%- endmacro %}

{#-
  CTEs `affected` and `in_scope`: on an incremental build, the events of the groups (group_keys)
  that received new events since the last build, so only those groups are re-aggregated; on a full
  build, all events. Expects a CTE named `events` and a `max_landing_run_id` column in {{ this }}.
-#}
{% macro events_in_affected_groups(group_keys) -%}
{% if is_incremental() %}
affected as (
    select distinct {{ group_keys | join(', ') }}
    from events
    where landing_run_id > {{ landed_after_this('max_landing_run_id') }}
),
{% endif %}
in_scope as (
    select events.*
    from events
    {% if is_incremental() %}
        semi join affected
            on {% for key in group_keys %}{{ 'and ' if not loop.first }}events.{{ key }} = affected.{{ key }} {% endfor %}
    {% endif %}
)
{%- endmacro %}

{#-
  One test node per table instead of one per column: each dbt node costs ~0.1 s of dbt's own
  overhead on every run, whatever the size of the data it reads.
-#}

{#- Rows where any of the columns is NULL. -#}
{% test not_null_columns(model, columns) %}
select *
from {{ model }}
where {% for column in columns %}{{ column }} is null{{ ' or ' if not loop.last }}{% endfor %}
{% endtest %}

{#- unique + not_null on one column. -#}
{% test primary_key(model, column_name) %}
select {{ column_name }}, count(*) as n_records
from {{ model }}
group by {{ column_name }}
having count(*) > 1 or {{ column_name }} is null
{% endtest %}

{#- The model's grain: no two rows share the combination of columns (NULLs compare equal). -#}
{% test unique_combination(model, columns) %}
select {{ columns | join(', ') }}, count(*) as n_records
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1
{% endtest %}

{#-
  Usage in = usage out, as tests attached to one model each (a test that names several models but
  belongs to none would be reported by Dagster as a warning on every run). A `where` of the test
  (e.g. landing_run_id > __tested_through__) scopes every relation it compares, not only the model.
-#}

{#- Per meter: kept events that feed it (its action, every filter passing) = its metered rows. -#}
{% test every_kept_event_metered_once(model, kept_events, meter_lines) %}
with kept as (
    select meter_lines.meter, count(*) as kept_events
    from (select * from {{ get_where_subquery(kept_events) }}) as kept_events
    inner join (select * from {{ get_where_subquery(meter_lines) }}) as meter_lines
        on kept_events.source_file = meter_lines.source_file
        and kept_events.line_number = meter_lines.line_number
    group by meter_lines.meter
),

metered as (
    select meter, count(*) as metered_events
    from {{ model }}
    group by meter
)

select
    coalesce(kept.meter, metered.meter) as meter,
    coalesce(kept.kept_events, 0) as kept_events,
    coalesce(metered.metered_events, 0) as metered_events
from kept
full outer join metered on kept.meter = metered.meter
where coalesce(kept.kept_events, 0) <> coalesce(metered.metered_events, 0)
{% endtest %}

{#- Per file: valid lines = kept events + recorded duplicates. -#}
{% test every_valid_line_kept_or_duplicate(model, validated_lines, kept_events) %}
with valid as (
    select source_file, count(*) as valid_lines
    from {{ get_where_subquery(validated_lines) }}
    where quarantine_reason is null
    group by source_file
),

kept as (
    select source_file, count(*) as kept_events
    from {{ get_where_subquery(kept_events) }}
    group by source_file
),

duplicates as (
    select duplicate_source_file as source_file, count(*) as duplicates
    from {{ model }}
    group by duplicate_source_file
)

select
    source_file,
    coalesce(valid.valid_lines, 0) as valid_lines,
    coalesce(kept.kept_events, 0) as kept_events,
    coalesce(duplicates.duplicates, 0) as duplicates
from valid
full outer join kept using (source_file)
full outer join duplicates using (source_file)
where coalesce(valid.valid_lines, 0) <> coalesce(kept.kept_events, 0) + coalesce(duplicates.duplicates, 0)
{% endtest %}

{#-
  Per customer and meter, over all periods: the events counted by the periods = those counted by the
  days and, for meters whose quantities add up (var additive_aggregations), the periods' quantities =
  the days' quantities. Compared over all periods, not per period: a period that starts at an anchor
  other than midnight UTC splits its first and last days.
-#}
{% test periods_add_up_to_days(model, days, meters) %}
with by_periods as (
    select customer_id, meter, sum(quantity) as quantity, sum(event_count) as event_count
    from {{ model }}
    where not is_carried
    group by customer_id, meter
),

by_days as (
    select customer_id, meter, sum(quantity) as quantity, sum(event_count) as event_count
    from {{ days }}
    group by customer_id, meter
)

select
    customer_id,
    meter,
    meters.aggregation,
    by_periods.quantity as period_quantity,
    by_days.quantity as day_quantity,
    by_periods.event_count as period_events,
    by_days.event_count as day_events
from by_periods
full outer join by_days using (customer_id, meter)
left join {{ meters }} as meters using (meter)
where by_periods.event_count is distinct from by_days.event_count
    or (meters.aggregation in {{ sql_list('additive_aggregations') }}
        and by_periods.quantity is distinct from by_days.quantity)
{% endtest %}

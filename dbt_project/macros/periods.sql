{#-
  Billing periods by Stripe's arithmetic: period k of a customer starts at anchor + k months,
  computed from the anchor each time with the day clamped to the month's last day
  (DuckDB's and Spark's month arithmetic clamp: Jan 31 + 1 month = Feb 28, + 2 months = Mar 31).
  Timestamps are UTC. On DuckDB the arithmetic runs on naive UTC timestamps taken from the epoch
  (`utc_naive`), not on casts: a cast between timestamptz and timestamp goes through the session
  time zone (ICU), which is both wrong outside UTC and slow (~1 s per 4 M rows per cast). Spark's
  session time zone is UTC (profiles.yml), so its timestamps are used as they are.
-#}
{% macro utc_naive(ts) -%}
    {{ return(adapter.dispatch('utc_naive', 'metering')(ts)) }}
{%- endmacro %}

{% macro default__utc_naive(ts) -%}
    make_timestamp(epoch_us({{ ts }}))
{%- endmacro %}

{% macro spark__utc_naive(ts) -%}
    ({{ ts }})
{%- endmacro %}

{% macro period_start(anchor, k) -%}
    {{ return(adapter.dispatch('period_start', 'metering')(anchor, k)) }}
{%- endmacro %}

{% macro default__period_start(anchor, k) -%}
    make_timestamptz(epoch_us({{ utc_naive(anchor) }} + to_months(({{ k }})::integer)))
{%- endmacro %}

{% macro spark__period_start(anchor, k) -%}
    timestampadd(MONTH, ({{ k }})::integer, {{ anchor }})
{%- endmacro %}

{#- Calendar months from the anchor's month to ts's month (the period index, or one more). -#}
{% macro calendar_months(anchor, ts) -%}
    ((year({{ utc_naive(ts) }}) - year({{ utc_naive(anchor) }})) * 12
        + month({{ utc_naive(ts) }}) - month({{ utc_naive(anchor) }}))
{%- endmacro %}

{#- Index k of the period [start_k, start_k+1) that contains ts: an event exactly at a start belongs to it. -#}
{% macro period_index(anchor, ts) -%}
    ({{ calendar_months(anchor, ts) }}
        - case when {{ period_start(anchor, calendar_months(anchor, ts)) }} > ({{ ts }}) then 1 else 0 end)
{%- endmacro %}

{#-
  Billing periods by Stripe's arithmetic: period k of a customer starts at anchor + k months,
  computed from the anchor each time with the day clamped to the month's last day
  (DuckDB's month arithmetic clamps: Jan 31 + 1 month = Feb 28, + 2 months = Mar 31).
  Timestamps are UTC; arithmetic runs on naive UTC timestamps so no session time zone applies.
-#}
{% macro period_start(anchor, k) -%}
    (({{ anchor }})::timestamp + to_months(({{ k }})::integer))::timestamptz
{%- endmacro %}

{#- Calendar months from the anchor's month to ts's month (the period index, or one more). -#}
{% macro calendar_months(anchor, ts) -%}
    ((year(({{ ts }})::timestamp) - year(({{ anchor }})::timestamp)) * 12
        + month(({{ ts }})::timestamp) - month(({{ anchor }})::timestamp))
{%- endmacro %}

{#- Index k of the period [start_k, start_k+1) that contains ts: an event exactly at a start belongs to it. -#}
{% macro period_index(anchor, ts) -%}
    ({{ calendar_months(anchor, ts) }}
        - case when {{ period_start(anchor, calendar_months(anchor, ts)) }} > ({{ ts }}) then 1 else 0 end)
{%- endmacro %}

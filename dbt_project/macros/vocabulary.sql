{#-
  A vocabulary of dbt_project.yml (vars finalized_invoice_statuses, billed_invoice_statuses,
  quarantine_reasons, aggregations) as a SQL list of string literals, for `in (...)`.
  Python reads the same vars through metering_dagster/vocabulary.py.
-#}
{% macro sql_list(vocabulary) -%}
    ({% for word in var(vocabulary) %}'{{ word }}'{{ ', ' if not loop.last }}{% endfor %})
{%- endmacro %}

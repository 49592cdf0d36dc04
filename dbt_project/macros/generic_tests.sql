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

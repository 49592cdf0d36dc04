{#-
  Post-hook of every model: its columns as the warehouse typed them and, for a table, its row count, logged
  as one line that the Dagster asset attaches to the model's materialization (metering_dagster/defs/transform/
  metadata.py). Read here, inside dbt's own connection: while dbt runs, no other process may open the
  warehouse. A view gets no row count: counting it would run its query. dbt run by hand (or by the tests'
  dbtRunner) skips it: only dagster-dbt, which sets DAGSTER_DBT_CLI, reads the line.
-#}
{% macro log_relation_metadata() %}{{ return(adapter.dispatch('log_relation_metadata', 'metering')()) }}{% endmacro %}

{% macro default__log_relation_metadata() %}
    {%- if execute and env_var('DAGSTER_DBT_CLI', '') == 'true' -%}
        {%- set described -%}
            select column_name, data_type,
                   {{ '(select count(*) from ' ~ this ~ ')' if model.config.materialized != 'view' else 'null' }}
            from information_schema.columns
            where table_catalog = '{{ this.database }}' and table_schema = '{{ this.schema }}'
              and table_name = '{{ this.identifier }}'
            order by ordinal_position
        {%- endset -%}
        {%- set rows = run_query(described).rows -%}
        {%- set columns = [] -%}
        {%- for row in rows -%}
            {%- do columns.append([row[0], row[1]]) -%}
        {%- endfor -%}
        {%- set row_count = rows[0][2] if rows and rows[0][2] is not none else none -%}
        {{ log('dagster-table-metadata ' ~ tojson({'columns': columns,
                                                   'row_count': row_count | int if row_count is not none else none}),
               info=True) }}
    {%- endif -%}
{% endmacro %}

{#-
  on-run-start: the sources as the engine reads them. DuckDB holds them in the warehouse file, written by the
  pipeline's Python steps. On Spark each source table is a folder of Parquet files under METERING_SPARK_SOURCES
  (<folder>/<schema>/<table>/, a local folder or an object-store URL), registered as an external table and
  refreshed, so that files written since the last run are read.
-#}
{% macro register_engine_sources() -%}
    {{ return(adapter.dispatch('register_engine_sources', 'metering')()) }}
{%- endmacro %}

{% macro default__register_engine_sources() -%}
    select 1
{%- endmacro %}

{% macro spark__register_engine_sources() -%}
    {%- if execute -%}
        {%- set root = env_var('METERING_SPARK_SOURCES', env_var('METERING_STATE_DIR', '../state') ~ '/spark/sources') -%}
        {%- set sources = graph.sources.values() | sort(attribute='unique_id') -%}
        {%- for schema in sources | map(attribute='schema') | unique -%}
            {%- do run_query('create schema if not exists ' ~ schema) -%}
        {%- endfor -%}
        {%- for source in sources -%}
            {%- do run_query('create table if not exists ' ~ source.schema ~ '.' ~ source.identifier
                             ~ " using parquet location '" ~ root ~ '/' ~ source.schema ~ '/' ~ source.identifier ~ "'") -%}
            {%- do run_query('refresh table ' ~ source.schema ~ '.' ~ source.identifier) -%}
        {%- endfor -%}
    {%- endif -%}
    select 1
{%- endmacro %}

{#-
  Spark's log_relation_metadata (macros/relation_metadata.sql): Spark has no information_schema; the columns as
  dbt-spark describes them, and a table's row count.
-#}
{% macro spark__log_relation_metadata() %}
    {%- if execute and env_var('DAGSTER_DBT_CLI', '') == 'true' -%}
        {%- set columns = [] -%}
        {%- for column in adapter.get_columns_in_relation(this) -%}
            {%- do columns.append([column.name, column.dtype]) -%}
        {%- endfor -%}
        {%- set row_count = none -%}
        {%- if model.config.materialized != 'view' -%}
            {%- set row_count = run_query('select count(*) from ' ~ this).rows[0][0] | int -%}
        {%- endif -%}
        {{ log('dagster-table-metadata ' ~ tojson({'columns': columns, 'row_count': row_count}), info=True) }}
    {%- endif -%}
{% endmacro %}

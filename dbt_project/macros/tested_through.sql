{#-
  Data tests on event-level tables read only the landing runs they have not passed on yet, so their
  cost follows the new data. A test opts in with `__tested_through__` in its `where`, replaced at run
  time by the last landing run it passed on (0 before its first pass). The mark advances only when
  the test passes after its model was built in the same invocation, so a failing test keeps failing
  on later runs. `--full-refresh` drops such a `where` (all history is tested) and resets every mark.
-#}

{% macro tests_passed_table() -%}
    intermediate.dbt_tests_passed
{%- endmacro %}

{#- dbt's get_where_subquery, plus the __tested_through__ placeholder. -#}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where') -%}
    {%- if where and '__tested_through__' in where -%}
        {%- if flags.FULL_REFRESH -%}
            {%- set where = none -%}
        {%- else -%}
            {%- set mark -%}
                select coalesce(max(landing_run_id), 0) from {{ tests_passed_table() }} where test_id = '{{ model.unique_id }}'
            {%- endset -%}
            {#- a constant, so that DuckDB skips the row groups of tested runs -#}
            {%- set mark = run_query(mark).columns[0].values()[0] if execute else '(' ~ mark ~ ')' -%}
            {%- if execute and mark | int == 0 -%}
                {#- never passed: test every row with no `where`; a plain aggregate spills to disk past
                    DuckDB's memory limit, the `in (subquery)` of a scoped where does not (20 M events) -#}
                {%- set where = none -%}
            {%- else -%}
                {%- set where = where | replace('__tested_through__', mark | string) -%}
            {%- endif -%}
        {%- endif -%}
    {%- endif -%}
    {%- if where -%}
        {%- do return('(select * from ' ~ relation ~ ' where ' ~ where ~ ') dbt_subquery') -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}

{#- on-run-start: what every model built in this run holds at least (landing waits for the run lock). -#}
{% macro start_tested_through() -%}
    {{ return(adapter.dispatch('start_tested_through', 'metering')()) }}
{%- endmacro %}

{#- Spark's Parquet tables take no delete: no mark is kept, so every test there reads all history. -#}
{% macro spark__start_tested_through() -%}
    {%- do run_query('create schema if not exists intermediate') -%}
    create table if not exists {{ tests_passed_table() }} (test_id string, landing_run_id bigint) using parquet
{%- endmacro %}

{% macro default__start_tested_through() -%}
    create schema if not exists intermediate;
    create table if not exists {{ tests_passed_table() }} (test_id varchar, landing_run_id bigint);
    {% if flags.FULL_REFRESH %}delete from {{ tests_passed_table() }};{% endif %}
    delete from {{ tests_passed_table() }} where test_id = '__run_start__';
    insert into {{ tests_passed_table() }}
        select '__run_start__', coalesce(max(landing_run_id), 0) from raw.landed_files;
{%- endmacro %}

{#- on-run-end: advance the mark of every opted-in test that passed on freshly built models or sources. -#}
{% macro record_tests_passed(results) -%}
    {{ return(adapter.dispatch('record_tests_passed', 'metering')(results)) }}
{%- endmacro %}

{% macro spark__record_tests_passed(results) -%}
    select 1
{%- endmacro %}

{% macro default__record_tests_passed(results) -%}
    {%- set built = [] -%}
    {%- for res in results if res.node.resource_type == 'model' and res.status == 'success' -%}
        {%- do built.append(res.node.unique_id) -%}
    {%- endfor -%}
    {%- set passed = [] -%}
    {%- for res in results if res.node.resource_type == 'test' and res.status == 'pass'
            and '__tested_through__' in (res.node.config.where or '') -%}
        {%- set stale = [] -%}
        {%- for node in res.node.depends_on.nodes if not node.startswith('source.') and node not in built -%}
            {%- do stale.append(node) -%}
        {%- endfor -%}
        {%- if not stale -%}{%- do passed.append(res.node.unique_id) -%}{%- endif -%}
    {%- endfor -%}
    {%- if passed %}
    delete from {{ tests_passed_table() }} where test_id in ('{{ passed | join("', '") }}');
    insert into {{ tests_passed_table() }}
        select test_id, (select landing_run_id from {{ tests_passed_table() }} where test_id = '__run_start__')
        from (values ('{{ passed | join("'), ('") }}')) as t(test_id);
    {%- else %}
    select 1
    {%- endif %}
{%- endmacro %}

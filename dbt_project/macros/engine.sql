{#-
  The SQL that differs between DuckDB and Spark, one small macro each (adapter.dispatch: `default__` is DuckDB's,
  `spark__` Spark's). The models use them where the two engines disagree and portable SQL elsewhere (QUALIFY,
  max_by, GROUP BY ALL, FILTER, `::` casts). Spark runs in ANSI mode with exact decimals
  (profiles.yml: allowPrecisionLoss false) and raw string literals (escapedStringLiterals, as DuckDB's).
-#}

{#- Text type for casts (DuckDB: varchar; Spark has no varchar without a length). -#}
{% macro text_type() -%}{{ return(adapter.dispatch('text_type', 'metering')()) }}{%- endmacro %}
{% macro default__text_type() -%}varchar{%- endmacro %}
{% macro spark__text_type() -%}string{%- endmacro %}

{#- Integers wider than bigint, for exact integer division of scaled decimals. -#}
{% macro wide_integer_type() -%}{{ return(adapter.dispatch('wide_integer_type', 'metering')()) }}{%- endmacro %}
{% macro default__wide_integer_type() -%}hugeint{%- endmacro %}
{% macro spark__wide_integer_type() -%}decimal(38, 0){%- endmacro %}

{#- A point in time (DuckDB: timestamptz; Spark's timestamp is one, shown in the session's zone, UTC here). -#}
{% macro instant_type() -%}{{ return(adapter.dispatch('instant_type', 'metering')()) }}{%- endmacro %}
{% macro default__instant_type() -%}timestamptz{%- endmacro %}
{% macro spark__instant_type() -%}timestamp{%- endmacro %}

{#- Integer division. -#}
{% macro integer_divide(a, b) -%}{{ return(adapter.dispatch('integer_divide', 'metering')(a, b)) }}{%- endmacro %}
{% macro default__integer_divide(a, b) -%}({{ a }}) // ({{ b }}){%- endmacro %}
{% macro spark__integer_divide(a, b) -%}({{ a }}) div ({{ b }}){%- endmacro %}

{#- The whole text matches the regular expression. -#}
{% macro matches_fully(text, pattern) -%}
    {{ return(adapter.dispatch('matches_fully', 'metering')(text, pattern)) }}
{%- endmacro %}
{% macro default__matches_fully(text, pattern) -%}regexp_full_match({{ text }}, '{{ pattern }}'){%- endmacro %}
{% macro spark__matches_fully(text, pattern) -%}({{ text }} rlike '^(?:{{ pattern }})$'){%- endmacro %}

{#- The text without the given leading (or trailing) characters. -#}
{% macro trim_leading(text, characters) -%}
    {{ return(adapter.dispatch('trim_leading', 'metering')(text, characters)) }}
{%- endmacro %}
{% macro default__trim_leading(text, characters) -%}ltrim({{ text }}, {{ characters }}){%- endmacro %}
{% macro spark__trim_leading(text, characters) -%}trim(leading {{ characters }} from {{ text }}){%- endmacro %}

{% macro trim_trailing(text, characters) -%}
    {{ return(adapter.dispatch('trim_trailing', 'metering')(text, characters)) }}
{%- endmacro %}
{% macro default__trim_trailing(text, characters) -%}rtrim({{ text }}, {{ characters }}){%- endmacro %}
{% macro spark__trim_trailing(text, characters) -%}trim(trailing {{ characters }} from {{ text }}){%- endmacro %}

{#- Every column of the relation but these (DuckDB: * exclude; Spark: * except). -#}
{% macro star_except(columns, relation=none) -%}
    {{ return(adapter.dispatch('star_except', 'metering')(columns, relation)) }}
{%- endmacro %}
{% macro default__star_except(columns, relation) -%}
    {{ relation ~ '.' if relation }}* exclude ({{ columns | join(', ') }})
{%- endmacro %}
{% macro spark__star_except(columns, relation) -%}
    {{ relation ~ '.' if relation }}* except ({{ columns | join(', ') }})
{%- endmacro %}

{#- Joins that keep the left rows with (semi) or without (anti) a match. -#}
{% macro semi_join() -%}{{ return(adapter.dispatch('semi_join', 'metering')()) }}{%- endmacro %}
{% macro default__semi_join() -%}semi join{%- endmacro %}
{% macro spark__semi_join() -%}left semi join{%- endmacro %}

{% macro anti_join() -%}{{ return(adapter.dispatch('anti_join', 'metering')()) }}{%- endmacro %}
{% macro default__anti_join() -%}anti join{%- endmacro %}
{% macro spark__anti_join() -%}left anti join{%- endmacro %}

{#- A CTE that the engine inlines rather than computes once (DuckDB's hint; Spark always inlines). -#}
{% macro not_materialized() -%}{{ return(adapter.dispatch('not_materialized', 'metering')()) }}{%- endmacro %}
{% macro default__not_materialized() -%}not materialized{%- endmacro %}
{% macro spark__not_materialized() -%}{%- endmacro %}

{#- A struct of the expressions, compared field by field in order (names: the expressions' column names). -#}
{% macro ordered_struct(expressions) -%}
    {{ return(adapter.dispatch('ordered_struct', 'metering')(expressions)) }}
{%- endmacro %}
{% macro default__ordered_struct(expressions) -%}struct_pack({{ expressions | join(', ') }}){%- endmacro %}
{% macro spark__ordered_struct(expressions) -%}struct({{ expressions | join(', ') }}){%- endmacro %}

{#- A struct with named fields (fields: list of [name, expression]). -#}
{% macro named_struct_of(fields) -%}
    {{ return(adapter.dispatch('named_struct_of', 'metering')(fields)) }}
{%- endmacro %}
{% macro default__named_struct_of(fields) -%}
    { {%- for name, expression in fields %}'{{ name }}': {{ expression }}{{ ', ' if not loop.last }}{% endfor -%} }
{%- endmacro %}
{% macro spark__named_struct_of(fields) -%}
    named_struct({%- for name, expression in fields %}'{{ name }}', {{ expression }}{{ ', ' if not loop.last }}{% endfor -%})
{%- endmacro %}

{#- Aggregate: the values as a list, in no particular order, or ordered by a sortable value itself. -#}
{% macro list_of(expression) -%}{{ return(adapter.dispatch('list_of', 'metering')(expression)) }}{%- endmacro %}
{% macro default__list_of(expression) -%}list({{ expression }}){%- endmacro %}
{% macro spark__list_of(expression) -%}collect_list({{ expression }}){%- endmacro %}

{% macro sorted_list_of(expression) -%}
    {{ return(adapter.dispatch('sorted_list_of', 'metering')(expression)) }}
{%- endmacro %}
{% macro default__sorted_list_of(expression) -%}list({{ expression }} order by {{ expression }}){%- endmacro %}
{% macro spark__sorted_list_of(expression) -%}array_sort(collect_list({{ expression }})){%- endmacro %}

{#- Aggregate: the values as a list ordered by another column. -#}
{% macro list_ordered_by(expression, order_by) -%}
    {{ return(adapter.dispatch('list_ordered_by', 'metering')(expression, order_by)) }}
{%- endmacro %}
{% macro default__list_ordered_by(expression, order_by) -%}list({{ expression }} order by {{ order_by }}){%- endmacro %}
{% macro spark__list_ordered_by(expression, order_by) -%}
    transform(array_sort(collect_list(named_struct('k', {{ order_by }}, 'v', {{ expression }}))), e -> e.v)
{%- endmacro %}

{#- Aggregate: the texts joined by a separator, ordered by another column. -#}
{% macro text_agg_ordered_by(expression, separator, order_by) -%}
    {{ return(adapter.dispatch('text_agg_ordered_by', 'metering')(expression, separator, order_by)) }}
{%- endmacro %}
{% macro default__text_agg_ordered_by(expression, separator, order_by) -%}
    string_agg({{ expression }}, {{ separator }} order by {{ order_by }})
{%- endmacro %}
{% macro spark__text_agg_ordered_by(expression, separator, order_by) -%}
    listagg({{ expression }}, {{ separator }}) within group (order by {{ order_by }})
{%- endmacro %}

{#- An empty list of texts. -#}
{% macro empty_text_list() -%}{{ return(adapter.dispatch('empty_text_list', 'metering')()) }}{%- endmacro %}
{% macro default__empty_text_list() -%}cast([] as varchar []){%- endmacro %}
{% macro spark__empty_text_list() -%}cast(array() as array<string>){%- endmacro %}

{#- The elements of a list that satisfy a condition on `element`; every element satisfies it; the largest. -#}
{% macro list_where(list, element, condition) -%}
    {{ return(adapter.dispatch('list_where', 'metering')(list, element, condition)) }}
{%- endmacro %}
{% macro default__list_where(list, element, condition) -%}list_filter({{ list }}, lambda {{ element }}: {{ condition }}){%- endmacro %}
{% macro spark__list_where(list, element, condition) -%}filter({{ list }}, {{ element }} -> {{ condition }}){%- endmacro %}

{% macro list_all(list, element, condition) -%}
    {{ return(adapter.dispatch('list_all', 'metering')(list, element, condition)) }}
{%- endmacro %}
{% macro default__list_all(list, element, condition) -%}
    list_bool_and(list_transform({{ list }}, lambda {{ element }}: {{ condition }}))
{%- endmacro %}
{% macro spark__list_all(list, element, condition) -%}forall({{ list }}, {{ element }} -> {{ condition }}){%- endmacro %}

{% macro list_contains_value(list, value) -%}
    {{ return(adapter.dispatch('list_contains_value', 'metering')(list, value)) }}
{%- endmacro %}
{% macro default__list_contains_value(list, value) -%}list_contains({{ list }}, {{ value }}){%- endmacro %}
{% macro spark__list_contains_value(list, value) -%}array_contains({{ list }}, {{ value }}){%- endmacro %}

{% macro list_largest(list) -%}{{ return(adapter.dispatch('list_largest', 'metering')(list)) }}{%- endmacro %}
{% macro default__list_largest(list) -%}list_max({{ list }}){%- endmacro %}
{% macro spark__list_largest(list) -%}array_max({{ list }}){%- endmacro %}

{#- The integers from 0 through n, one row each (in a select list). -#}
{% macro each_integer_through(n) -%}
    {{ return(adapter.dispatch('each_integer_through', 'metering')(n)) }}
{%- endmacro %}
{% macro default__each_integer_through(n) -%}unnest(range(0, {{ n }} + 1)){%- endmacro %}
{#- sequence(0, -1) counts down on Spark: no rows for a negative n, as on DuckDB -#}
{% macro spark__each_integer_through(n) -%}
    explode(case when {{ n }} >= 0 then sequence(0, {{ n }}) else array() end)
{%- endmacro %}

{#- A text as a JSON string literal (quoted and escaped), NULL for NULL. -#}
{% macro json_quoted(text) -%}{{ return(adapter.dispatch('json_quoted', 'metering')(text)) }}{%- endmacro %}
{% macro default__json_quoted(text) -%}to_json({{ text }})::varchar{%- endmacro %}
{% macro spark__json_quoted(text) -%}
    case when {{ text }} is not null then regexp_extract(to_json(named_struct('v', {{ text }})), '^\{"v":(.*)\}$', 1) end
{%- endmacro %}

{#- Seconds as an interval. -#}
{% macro seconds_interval(seconds) -%}
    {{ return(adapter.dispatch('seconds_interval', 'metering')(seconds)) }}
{%- endmacro %}
{% macro default__seconds_interval(seconds) -%}to_seconds({{ seconds }}){%- endmacro %}
{% macro spark__seconds_interval(seconds) -%}make_interval(0, 0, 0, 0, 0, 0, {{ seconds }}){%- endmacro %}

{#- The instant of whole Unix seconds (Spark: NULL outside years 1-9999, which it cannot hold). -#}
{% macro instant_from_unix_seconds(seconds) -%}
    {{ return(adapter.dispatch('instant_from_unix_seconds', 'metering')(seconds)) }}
{%- endmacro %}
{% macro default__instant_from_unix_seconds(seconds) -%}to_timestamp({{ seconds }}){%- endmacro %}
{% macro spark__instant_from_unix_seconds(seconds) -%}
    case when {{ seconds }} between -62135596800 and 253402300799 then timestamp_seconds({{ seconds }}) end
{%- endmacro %}

{#- An instant as RFC 3339 text in UTC, to the second (2026-10-01T00:00:00Z). -#}
{% macro utc_text(ts) -%}{{ return(adapter.dispatch('utc_text', 'metering')(ts)) }}{%- endmacro %}
{% macro default__utc_text(ts) -%}strftime({{ utc_naive(ts) }}, '%Y-%m-%dT%H:%M:%SZ'){%- endmacro %}
{% macro spark__utc_text(ts) -%}date_format({{ ts }}, "yyyy-MM-dd'T'HH:mm:ss'Z'"){%- endmacro %}

{#- The current time. -#}
{% macro current_instant() -%}{{ return(adapter.dispatch('current_instant', 'metering')()) }}{%- endmacro %}
{% macro default__current_instant() -%}now(){%- endmacro %}
{% macro spark__current_instant() -%}current_timestamp(){%- endmacro %}

{#- dbt's safe_cast is a plain cast on Spark, which raises in ANSI mode: NULL on failure instead, as DuckDB's. -#}
{% macro spark__safe_cast(field, type) -%}try_cast({{ field }} as {{ type }}){%- endmacro %}

{#- How an append-only incremental model adds rows (Spark's Parquet tables take no delete or merge). -#}
{% macro append_strategy() -%}append{%- endmacro %}

{#- The first group of a regular expression match, in a replacement. -#}
{% macro regex_group_1() -%}{{ return(adapter.dispatch('regex_group_1', 'metering')()) }}{%- endmacro %}
{% macro default__regex_group_1() -%}'\1'{%- endmacro %}
{% macro spark__regex_group_1() -%}'$1'{%- endmacro %}

{#-
  How a model that merges new events into its stored groups is materialized. DuckDB: incremental, delete+insert
  on the group keys (cost follows the new data). Spark: a table rebuilt from every event on each run, as exact
  and as simple, but its cost follows all history: Parquet tables without Delta or Iceberg take no delete or
  merge, and `insert_overwrite` of a period's partition cannot read the rows it replaces.
-#}
{% macro merged_aggregate_materialization() -%}
    {{ return(adapter.dispatch('merged_aggregate_materialization', 'metering')()) }}
{%- endmacro %}
{% macro default__merged_aggregate_materialization() -%}{{ return('incremental') }}{%- endmacro %}
{% macro spark__merged_aggregate_materialization() -%}{{ return('table') }}{%- endmacro %}

{#- The last non-NULL value of a window (DuckDB: IGNORE NULLS inside the call; Spark: its second argument). -#}
{% macro last_value_ignoring_nulls(expression) -%}
    {{ return(adapter.dispatch('last_value_ignoring_nulls', 'metering')(expression)) }}
{%- endmacro %}
{% macro default__last_value_ignoring_nulls(expression) -%}last_value({{ expression }} ignore nulls){%- endmacro %}
{% macro spark__last_value_ignoring_nulls(expression) -%}last_value({{ expression }}, true){%- endmacro %}

{#-
  Landing rewrites every JSON number into {"#num": "<exact text>"} (metering_dagster/landing/parse.py)
  so that no number is ever read as a float. These macros read a JSON scalar back as
  (type, exact text). `json_path` turns a dotted contract path into a quoted JSON path, so
  field names from the contract never reach SQL unquoted. DuckDB reads the JSON text; Spark parses it
  into a VARIANT (`json_at` of a payload, then the same questions of the value).
-#}
{% macro json_path(dotted_path) -%}
    {{ return(adapter.dispatch('json_path', 'metering')(dotted_path)) }}
{%- endmacro %}

{% macro default__json_path(dotted_path) -%}
    ('$."' || replace({{ dotted_path }}, '.', '"."') || '"')
{%- endmacro %}

{#- Spark's variant paths quote a key as ['key'] -#}
{% macro spark__json_path(dotted_path) -%}
    ("$['" || replace({{ dotted_path }}, '.', "']['") || "']")
{%- endmacro %}

{#- The JSON value at a path of a JSON document (NULL when absent). -#}
{% macro json_at(document, path) -%}
    {{ return(adapter.dispatch('json_at', 'metering')(document, path)) }}
{%- endmacro %}

{% macro default__json_at(document, path) -%}
    json_extract({{ document }}, {{ path }})
{%- endmacro %}

{% macro spark__json_at(document, path) -%}
    variant_get(parse_json({{ document }}), {{ path }})
{%- endmacro %}

{% macro json_scalar_type(j) -%}
    {{ return(adapter.dispatch('json_scalar_type', 'metering')(j)) }}
{%- endmacro %}

{% macro default__json_scalar_type(j) -%}
    case
        when {{ j }} is null then null
        when json_type({{ j }}) = 'OBJECT' and json_exists({{ j }}, '$."#num"') then 'number'
        when json_type({{ j }}) = 'VARCHAR' then 'string'
        else lower(json_type({{ j }}))
    end
{%- endmacro %}

{#- schema_of_variant: STRING, BOOLEAN, VOID (JSON null), OBJECT<...>, ARRAY<...> -#}
{% macro spark__json_scalar_type(j) -%}
    case
        when {{ j }} is null then null
        when schema_of_variant({{ j }}) like 'OBJECT<%' and variant_get({{ j }}, "$['#num']") is not null then 'number'
        when schema_of_variant({{ j }}) = 'VOID' then 'null'
        else lower(regexp_extract(schema_of_variant({{ j }}), '^([A-Z]+)', 1))
    end
{%- endmacro %}

{% macro json_scalar_text(j) -%}
    {{ return(adapter.dispatch('json_scalar_text', 'metering')(j)) }}
{%- endmacro %}

{% macro default__json_scalar_text(j) -%}
    case
        when json_type({{ j }}) = 'OBJECT' then {{ j }} ->> '$."#num"'
        when json_type({{ j }}) in ('VARCHAR', 'BOOLEAN') then {{ j }} ->> '$'
    end
{%- endmacro %}

{% macro spark__json_scalar_text(j) -%}
    case
        when schema_of_variant({{ j }}) like 'OBJECT<%' then variant_get({{ j }}, "$['#num']", 'string')
        when schema_of_variant({{ j }}) in ('STRING', 'BOOLEAN') then variant_get({{ j }}, '$', 'string')
    end
{%- endmacro %}

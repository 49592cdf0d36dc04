{#-
  Landing rewrites every JSON number into {"#num": "<exact text>"} (metering_dagster/landing/parse.py)
  so that no number is ever read as a float. These macros read a JSON scalar back as
  (type, exact text). `json_path` turns a dotted contract path into a quoted JSON path, so
  field names from the contract never reach SQL unquoted.
-#}
{% macro json_path(dotted_path) -%}
    ('$."' || replace({{ dotted_path }}, '.', '"."') || '"')
{%- endmacro %}

{% macro json_scalar_type(j) -%}
    case
        when {{ j }} is null then null
        when json_type({{ j }}) = 'OBJECT' and json_exists({{ j }}, '$."#num"') then 'number'
        when json_type({{ j }}) = 'VARCHAR' then 'string'
        else lower(json_type({{ j }}))
    end
{%- endmacro %}

{% macro json_scalar_text(j) -%}
    case
        when json_type({{ j }}) = 'OBJECT' then {{ j }} ->> '$."#num"'
        when json_type({{ j }}) in ('VARCHAR', 'BOOLEAN') then {{ j }} ->> '$'
    end
{%- endmacro %}

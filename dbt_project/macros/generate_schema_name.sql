{#- Schemas are named exactly as configured (`marts`, not `main_marts`): they are the analyst API. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {{ (custom_schema_name or target.schema) | trim }}
{%- endmacro %}

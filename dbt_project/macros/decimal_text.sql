{#- An exact decimal as text without trailing zeros (25.500000000000 -> 25.5, 20.000000000000 -> 20). -#}
{% macro decimal_text(value) -%}
    regexp_replace(regexp_replace(cast({{ value }} as varchar), '(\.[0-9]*[1-9])0+$|\.0+$', '\1'), '^-0$', '0')
{%- endmacro %}

{#- An exact decimal as text without trailing zeros (25.500000000000 -> 25.5, 20.000000000000 -> 20). -#}
{% macro decimal_text(value) -%}
    regexp_replace(regexp_replace(cast({{ value }} as {{ text_type() }}), '(\.[0-9]*[1-9])0+$|\.0+$', {{ regex_group_1() }}), '^-0$', '0')
{%- endmacro %}

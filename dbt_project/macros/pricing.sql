{#- Stripe pricing pieces. Amounts are exact decimals in cents; rounding happens once per line. -#}

{#- package: Stripe transform_quantity, divide_by an integer size, round up or down. For q >= 0 and an
    integer size, ceil(q / size) = ceil(ceil(q) / size), so integer division stays exact. -#}
{% macro package_count(quantity, size, rounding) -%}
    case
        when {{ rounding }} = 'down'
            then {{ integer_divide('floor(' ~ quantity ~ ')::' ~ wide_integer_type(), '(' ~ size ~ ')::' ~ wide_integer_type()) }}
        else {{ integer_divide('ceil(' ~ quantity ~ ')::' ~ wide_integer_type() ~ ' + (' ~ size ~ ')::' ~ wide_integer_type() ~ ' - 1',
                               '(' ~ size ~ ')::' ~ wide_integer_type()) }}
    end
{%- endmacro %}

{#- Units of quantity that fall in a graduated tier (lower_bound, up_to]; up_to NULL = inf. -#}
{% macro units_in_tier(quantity, lower_bound, up_to) -%}
    greatest(least({{ quantity }}, coalesce({{ up_to }}, {{ quantity }})) - {{ lower_bound }}, 0)
{%- endmacro %}

{#- Half-up to whole cents (amounts are never negative, so DuckDB's and Spark's half-away-from-zero is half-up). -#}
{% macro round_half_up_cents(amount) -%}
    round({{ amount }}, 0)::bigint
{%- endmacro %}

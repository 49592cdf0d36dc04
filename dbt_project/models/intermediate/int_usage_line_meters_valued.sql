{{ config(materialized='incremental', incremental_strategy=append_strategy()) }}

-- One row per landed line x meter it feeds (action matches and every filter passes), with the
-- value read as an exact decimal and what is wrong with it, if anything (-> invalid_value, or
-- value_out_of_range for a magnitude of 10^max_value_integer_digits or more: bounded values keep every
-- sum of them inside DECIMAL(38,12); see DECISIONLOG "Bounds").

with lines as (
    select landing_run_id, source_file, line_number, action, payload
    from {{ ref('stg_raw__usage_lines') }}
    where is_json_object and action_type = 'string'
    {% if is_incremental() %}
        and landing_run_id > {{ landed_after_this() }}
    {% endif %}
),

meters as (
    select * from {{ ref('stg_contract__meters') }}
),

filters as (
    select * from {{ ref('stg_contract__meter_filters') }}
),

meter_filters as (
    -- per meter, each listed field with its allowed values
    select
        meter,
        {{ list_of(named_struct_of([['json_path', 'field_json_path'], ['allowed', 'allowed_values']])) }} as fields
    from (
        select meter, field_json_path, {{ list_of('allowed_value') }} as allowed_values
        from filters
        group by all
    )
    group by meter
),

fed as (
    -- every listed field must hold one of its allowed values; checked line by line, which is much
    -- cheaper than a grouping by line x field (no hash table over every line)
    select
        lines.landing_run_id,
        lines.source_file,
        lines.line_number,
        meters.meter,
        meters.aggregation,
        {{ json_at('lines.payload', 'meters.value_json_path') }} as value_json
    from lines
    inner join meters on lines.action = meters.action
    left join meter_filters on meters.meter = meter_filters.meter
    where meter_filters.fields is null
        or {{ list_all('meter_filters.fields', 'field', 'coalesce(' ~ list_contains_value(
            'field.allowed', json_scalar_text(json_at('lines.payload', 'field.json_path'))) ~ ', false)') }}
),

typed as (
    select
        landing_run_id,
        source_file,
        line_number,
        meter,
        aggregation,
        {{ json_scalar_type('value_json') }} as value_type,
        {{ json_scalar_text('value_json') }} as value_text
    from fed
),

number_parts as (
    -- JSON number grammar, also accepted as a decimal string: -?int(.frac)?(e exp)?
    select
        *,
        (
            value_type = 'number'
            or (value_type = 'string' and {{ matches_fully('value_text', '-?\\d+(\\.\\d+)?([eE][+-]?\\d+)?') }})
        ) as is_decimal,
        regexp_extract(value_text, '^-?(\d+)', 1) as int_digits,
        regexp_extract(value_text, '^-?\d+\.(\d+)', 1) as frac_digits,
        coalesce(try_cast(regexp_extract(value_text, '[eE]([+-]?\d+)$', 1) as integer), 0) as exponent
    from typed
),

checked as (
    -- the places of the first and last significant digits, from the digits and the exponent
    -- ('0.0001e18' has 15 integer places, '100e-2' none after the point)
    select
        *,
        length({{ trim_trailing(trim_leading('int_digits || frac_digits', "'0'"), "'0'") }}) as significant_digits,
        length({{ trim_trailing('int_digits || frac_digits', "'0'") }}) - length(int_digits) - exponent
            as decimal_places,
        (
            length(int_digits) + exponent
            - (length(int_digits || frac_digits) - length({{ trim_leading('int_digits || frac_digits', "'0'") }}))
        ) as integer_places
    from number_parts
),

problems as (
    select
        *,
        case
            when aggregation = 'count' then null
            when aggregation = 'unique_count'
                then
                    case
                        when value_type is null then 'value is missing'
                        when value_type not in ('string', 'number', 'boolean') then 'value is not a scalar'
                    end
            when value_type is null then 'value is missing'
            when not is_decimal then 'value is not a number or decimal string'
            when significant_digits > 15 then 'value has more than 15 significant digits'
            when decimal_places > 12 then 'value has more than 12 decimal places'
            when integer_places > {{ var('max_value_integer_digits') }}
                then 'value is 10^{{ var("max_value_integer_digits") }} or more in magnitude'
            when aggregation <> 'sum' and value_text like '-%' and significant_digits > 0
                then 'value is negative (only sum meters take negative values)'
        end as value_problem,
        (
            aggregation not in ('count', 'unique_count') and is_decimal and significant_digits <= 15
            and decimal_places <= 12 and integer_places > {{ var('max_value_integer_digits') }}
        ) as is_out_of_range
    from checked
),

valued as (
    select
        landing_run_id,
        source_file,
        line_number,
        meter,
        aggregation,
        value_type,
        value_text,
        value_problem,
        case
            when is_out_of_range then 'value_out_of_range'
            when value_problem is not null then 'invalid_value'
        end as value_reason,
        case
            when aggregation = 'count' then 1
            when is_decimal and significant_digits <= 15 and decimal_places <= 12
                and integer_places <= {{ var('max_value_integer_digits') }}
                then try_cast(value_text as decimal(38, 12))
        end::decimal(38, 12) as value,
        -- unique_count compares the JSON scalar as written: its type and its text
        case when aggregation = 'unique_count' then value_type || ':' || value_text end as value_key
    from problems
)

select * from valued

with source as (
    select * from {{ source('contract', 'meters') }}
),

renamed as (
    select
        -- ids
        meter,
        display_name,
        action,
        -- how events feed the meter
        value_path,
        case when value_path is not null then {{ json_path('value_path') }} end as value_json_path,
        aggregation,
        unit,
        stripe_formula,
        -- price
        price_model,
        unit_amount_decimal::decimal(38, 12) as unit_amount_decimal,
        package_size::decimal(38, 12) as package_size,
        coalesce(package_round, 'up') as package_round,
        lower(currency) as currency,
        price_fingerprint
    from source
)

select * from renamed

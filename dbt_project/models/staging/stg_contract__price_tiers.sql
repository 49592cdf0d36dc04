with source as (
    select * from {{ source('contract', 'price_tiers') }}
),

renamed as (
    select
        meter,
        tier_index,
        -- a tier covers quantities in (lower_bound, up_to]; up_to NULL = inf
        coalesce(lag(up_to) over (partition by meter order by tier_index), 0)::decimal(38, 12) as lower_bound,
        up_to::decimal(38, 12) as up_to,
        unit_amount_decimal::decimal(38, 12) as unit_amount_decimal,
        flat_amount_decimal::decimal(38, 12) as flat_amount_decimal
    from source
)

select * from renamed

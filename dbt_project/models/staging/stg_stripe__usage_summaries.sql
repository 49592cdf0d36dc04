{{ config(tags=['reconciliation']) }}
with source as (
    select * from {{ source('stripe_view', 'usage_summaries') }}
),

renamed as (
    select
        customer_id,
        meter,
        period_start,
        period_end,
        stripe_quantity::decimal(38, 12) as stripe_quantity,
        snapshot_at
    from source
)

select * from renamed

{{ config(tags=['reconciliation']) }}
with source as (
    select * from {{ source('stripe_view', 'invoice_adjustments') }}
),

renamed as (
    select
        -- ids
        customer_id,
        meter,
        adjustment_id,
        stripe_invoice_item_id,
        stripe_invoice_id,
        -- the period it adjusts
        period_start,
        seq,
        -- numerics
        amount_cents,
        quantity_after::decimal(38, 12) as quantity_after,
        snapshot_at
    from source
)

select * from renamed

{{ config(tags=['reconciliation']) }}
with source as (
    select * from {{ source('stripe_view', 'invoice_lines') }}
),

renamed as (
    select
        customer_id,
        meter,
        period_start,
        period_end,
        stripe_invoice_id,
        invoice_status,
        quantity::decimal(38, 12) as quantity,
        amount_cents,
        lower(currency) as currency,
        snapshot_at
    from source
)

select * from renamed

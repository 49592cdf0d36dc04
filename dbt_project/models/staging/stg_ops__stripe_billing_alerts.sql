{{ config(tags=['reconciliation']) }}

with source as (
    select * from {{ source('ops', 'stripe_billing_alerts') }}
),

renamed as (
    select
        budget_key,
        customer_id,
        stripe_alert_id,
        stripe_meter_id,
        gte,
        status,
        synced_at
    from source
)

select * from renamed

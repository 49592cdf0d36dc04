{{ config(tags=['reconciliation']) }}

with source as (
    select * from {{ source('stripe_view', 'billing_alerts_triggered') }}
),

renamed as (
    select
        stripe_alert_id,
        stripe_event_id,
        customer_id,
        budget_key,
        meter,
        value as stripe_value,
        triggered_at,
        period_start
    from source
)

select * from renamed

{{ config(tags=['reconciliation']) }}

with source as (
    select * from {{ source('ops', 'budget_alerts') }}
),

renamed as (
    select
        alert_id,
        alert_type,
        budget_key,
        customer_id,
        period_start,
        period_end,
        threshold_percent,
        sequence,
        used,
        limit_value,
        unit,
        access,
        as_of,
        created_at,
        creation_order,
        status,
        attempts,
        last_attempt_at,
        delivered_at,
        last_error
    from source
)

select * from renamed

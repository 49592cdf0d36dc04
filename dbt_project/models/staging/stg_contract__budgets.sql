with source as (
    select * from {{ source('contract', 'budgets') }}
),

renamed as (
    select
        budget_key,
        customer_id,
        budget_kind,
        meter,
        limit_value,
        on_exceed
    from source
)

select * from renamed

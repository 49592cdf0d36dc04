with source as (
    select * from {{ source('contract', 'budget_thresholds') }}
),

renamed as (
    select
        budget_key,
        customer_id,
        threshold_percent
    from source
)

select * from renamed

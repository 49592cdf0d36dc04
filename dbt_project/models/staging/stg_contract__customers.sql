with source as (
    select * from {{ source('contract', 'customers') }}
),

renamed as (
    select
        customer_id,
        billing_anchor,
        billing_interval
    from source
)

select * from renamed

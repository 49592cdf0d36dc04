with source as (
    select * from {{ source('contract', 'settings') }}
),

renamed as (
    select
        environment,
        lower(currency) as currency,
        grace_period_seconds,
        contract_fingerprint
    from source
)

select * from renamed

with source as (
    select * from {{ source('contract', 'settings') }}
),

renamed as (
    select
        environment,
        lower(currency) as currency,
        grace_period_seconds,
        contract_fingerprint,
        coalesce(entitlement_fail_mode, 'open') as entitlement_fail_mode,
        coalesce(entitlement_max_staleness_seconds, 900) as entitlement_max_staleness_seconds
    from source
)

select * from renamed

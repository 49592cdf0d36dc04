-- What the entitlements API answers for each customer of the contract: access is refused while a `block`
-- budget of the current period (by Stripe's time) is at or past its limit. Staleness is decided when asked.

with customers as (
    select * from {{ ref('stg_contract__customers') }}
),

settings as (
    select * from {{ ref('stg_contract__settings') }}
),

clock as (
    select * from {{ ref('stg_ops__stripe_clock_readings') }}
),

blocking as (
    select
        customer_id,
        {{ list_ordered_by(
            "budget_key || ': ' || coalesce(" ~ decimal_text('used') ~ ", 'too large to price')
            || ' of ' || " ~ decimal_text('limit_value') ~ " || ' ' || unit
            || coalesce(' (' || " ~ decimal_text('percent') ~ " || '%)', '')",
            'budget_key'
        ) }} as reasons
    from {{ ref('fct_budget_status') }}
    where is_current and access = 'block'
    group by customer_id
)

select
    customers.customer_id,
    case when blocking.customer_id is null then 'allow' else 'block' end as access,  -- noqa: RF04
    coalesce(blocking.reasons, {{ empty_text_list() }}) as reasons,
    clock.as_of,
    clock.stripe_now,
    settings.entitlement_fail_mode as fail_mode,
    settings.entitlement_max_staleness_seconds as max_staleness_seconds
from customers
cross join settings
left join clock on true  -- noqa: RF04
left join blocking on customers.customer_id = blocking.customer_id

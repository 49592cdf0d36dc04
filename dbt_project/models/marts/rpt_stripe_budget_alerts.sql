{{ config(tags=['reconciliation']) }}

-- Our 100% alerts of quantity budgets against Stripe's own billing alerts for them, per customer, budget and
-- period. Both watch the customer's current period as usage arrives. Stripe's `one_time` alert fires once per
-- customer, ever (Stripe's docs), so a period that reaches the limit after Stripe's alert already fired for an
-- earlier one is `stripe_alert_spent`, not a difference.

with ours as (
    select
        ours.customer_id,
        ours.budget_key,
        ours.period_start,
        min(ours.used) as used,
        min(ours.limit_value) as limit_value
    from {{ ref('stg_ops__budget_alerts') }} as ours
    where ours.alert_type = 'budget.threshold_reached' and ours.threshold_percent = 100
        and exists (
            select 1 from {{ ref('stg_ops__stripe_billing_alerts') }} as alerts
            where alerts.customer_id = ours.customer_id and alerts.budget_key = ours.budget_key
        )
    group by ours.customer_id, ours.budget_key, ours.period_start
),

stripe as (
    select
        customer_id,
        budget_key,
        period_start,
        min(triggered_at) as triggered_at,
        min(stripe_value) as stripe_value
    from {{ ref('stg_stripe__billing_alerts_triggered') }}
    group by customer_id, budget_key, period_start
),

first_fired as (
    select
        customer_id,
        budget_key,
        min(period_start) as period_start
    from stripe
    group by customer_id, budget_key
)

select
    coalesce(ours.customer_id, stripe.customer_id) as customer_id,
    coalesce(ours.budget_key, stripe.budget_key) as budget_key,
    coalesce(ours.period_start, stripe.period_start) as period_start,
    ours.used as local_used,
    ours.limit_value,
    stripe.stripe_value,
    stripe.triggered_at as stripe_triggered_at,
    case
        when ours.customer_id is not null and stripe.customer_id is not null then 'match'
        when ours.customer_id is not null and first_fired.period_start < ours.period_start then 'stripe_alert_spent'
        when ours.customer_id is not null then 'missing_in_stripe'
        else 'missing_locally'
    end as status
from ours
full outer join stripe
    on ours.customer_id = stripe.customer_id
    and ours.budget_key = stripe.budget_key
    and ours.period_start = stripe.period_start
left join first_fired
    on coalesce(ours.customer_id, stripe.customer_id) = first_fired.customer_id
    and coalesce(ours.budget_key, stripe.budget_key) = first_fired.budget_key

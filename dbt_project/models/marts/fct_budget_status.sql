-- Every budget of every customer in every period: what counts is exactly what bills (our shadow invoice for
-- spend, the meter's period quantity for quantity budgets: deduplicated, valid, negative corrections included).
-- Thresholds are decided exactly (used x 100 >= limit x threshold); `percent` is for reading only.

with assigned as (
    select * from {{ ref('int_budgets_assigned') }}
),

customers as (
    select * from {{ ref('stg_contract__customers') }}
),

clock as (
    select * from {{ ref('stg_ops__stripe_clock_readings') }}
),

-- The period containing Stripe's now, listed even before the data reaches it (its budget starts at 0).
current_periods as (
    select
        customers.customer_id,
        {% set current_index = period_index('customers.billing_anchor', 'clock.stripe_now') %}
        {{ period_start('customers.billing_anchor', current_index) }} as period_start,
        {{ period_start('customers.billing_anchor', current_index ~ ' + 1') }} as period_end
    from customers
    cross join clock
    where clock.stripe_now >= customers.billing_anchor
),

periods as (
    select
        customer_id,
        period_start,
        period_end
    from {{ ref('int_customer_periods') }}
    union
    select
        customer_id,
        period_start,
        period_end
    from current_periods
),

spend as (
    select
        customer_id,
        period_start,
        sum(amount_cents) as amount_cents,
        -- a line too large to price (amount_problem) is past any spend budget
        count(*) filter (where amount_cents is null) as unpriced_lines
    from {{ ref('fct_invoice_lines_expected') }}
    group by customer_id, period_start
),

quantities as (
    select * from {{ ref('fct_usage_by_period') }}
),

measured as (
    select
        assigned.customer_id,
        assigned.budget_key,
        assigned.budget_kind,
        assigned.meter,
        assigned.unit,
        periods.period_start,
        periods.period_end,
        case
            when assigned.budget_kind = 'quantity' then coalesce(quantities.quantity, 0)
            when coalesce(spend.unpriced_lines, 0) = 0 then coalesce(spend.amount_cents, 0)
        end::decimal(38, 12) as used,
        assigned.limit_value,
        assigned.thresholds,
        assigned.on_exceed
    from assigned
    inner join periods on assigned.customer_id = periods.customer_id
    left join spend
        on assigned.customer_id = spend.customer_id
        and periods.period_start = spend.period_start
    left join quantities
        on assigned.customer_id = quantities.customer_id
        and assigned.meter = quantities.meter
        and periods.period_start = quantities.period_start
),

decided as (
    select
        measured.*,
        -- sqlfluff reads `t`, the parameter of a DuckDB lambda, as a table (noqa)
        case
            when measured.used is null then measured.thresholds
            else list_filter(measured.thresholds, lambda t: measured.used * 100 >= measured.limit_value * t)  -- noqa
        end as thresholds_reached,
        measured.used is null or measured.used >= measured.limit_value as is_at_limit
    from measured
)

select
    decided.customer_id,
    decided.budget_key,
    decided.budget_kind,
    decided.meter,
    decided.unit,
    decided.period_start,
    decided.period_end,
    decided.used,
    decided.limit_value,
    round(decided.used * 100 / decided.limit_value, 2)::decimal(38, 2) as percent,  -- noqa: RF04
    decided.thresholds,
    decided.thresholds_reached,
    list_max(decided.thresholds_reached) as highest_threshold_reached,
    decided.on_exceed,
    -- noqa: disable=RF04
    case when decided.on_exceed = 'block' and decided.is_at_limit then 'block' else 'allow' end as access,
    -- noqa: enable=RF04
    coalesce(
        clock.stripe_now >= decided.period_start and clock.stripe_now < decided.period_end, false
    ) as is_current,
    clock.stripe_now,
    clock.as_of
from decided
left join clock on true  -- noqa: RF04

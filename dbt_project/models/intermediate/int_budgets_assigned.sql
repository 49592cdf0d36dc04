-- Every budget a customer has: its own under a key, else the key's "*" budget (one per customer x key).

with budgets as (
    select * from {{ ref('stg_contract__budgets') }}
),

customers as (
    select * from {{ ref('stg_contract__customers') }}
),

thresholds as (
    select
        budget_key,
        customer_id,
        {{ sorted_list_of('threshold_percent') }} as thresholds
    from {{ ref('stg_contract__budget_thresholds') }}
    group by budget_key, customer_id
),

meters as (
    select * from {{ ref('stg_contract__meters') }}
),

own as (
    select
        budgets.customer_id,
        budgets.budget_key,
        budgets.customer_id as defined_for
    from budgets
    where budgets.customer_id <> '*'
),

by_default as (
    select
        customers.customer_id,
        budgets.budget_key,
        '*' as defined_for
    from budgets
    cross join customers
    where budgets.customer_id = '*'
        and not exists (
            select 1 from own
            where own.customer_id = customers.customer_id and own.budget_key = budgets.budget_key
        )
),

assigned as (
    select * from own
    union all
    select * from by_default
)

select
    assigned.customer_id,
    assigned.budget_key,
    budgets.budget_kind,
    budgets.meter,
    case when budgets.budget_kind = 'spend' then 'cents' else coalesce(meters.unit, budgets.meter) end as unit,
    budgets.limit_value,
    thresholds.thresholds,
    budgets.on_exceed,
    assigned.defined_for
from assigned
inner join budgets
    on assigned.budget_key = budgets.budget_key and assigned.defined_for = budgets.customer_id
inner join thresholds
    on assigned.budget_key = thresholds.budget_key and assigned.defined_for = thresholds.customer_id
left join meters on budgets.meter = meters.meter

-- Our shadow invoice before rounding: one line per customer x meter x listed period, priced on
-- max(quantity, 0) exactly as Stripe prices it, as an exact decimal amount in cents.

with listed as (
    select * from {{ ref('int_customer_periods') }}
),

meters as (
    select * from {{ ref('stg_contract__meters') }}
),

tiers as (
    select * from {{ ref('stg_contract__price_tiers') }}
),

usage as (
    select * from {{ ref('int_usage_periods_carried') }}
),

lines as (
    select
        listed.customer_id,
        meters.meter,
        listed.period_index,
        listed.period_start,
        listed.period_end,
        coalesce(usage.quantity, 0)::decimal(38, 12) as quantity,
        greatest(coalesce(usage.quantity, 0), 0)::decimal(38, 12) as billable_quantity,
        meters.price_model,
        meters.unit_amount_decimal,
        meters.package_size,
        meters.package_round,
        meters.currency,
        meters.price_fingerprint
    from listed
    cross join meters
    left join usage
        on listed.customer_id = usage.customer_id
        and meters.meter = usage.meter
        and listed.period_start = usage.period_start
),

tiered as (
    -- graduated: every tier's units at its price + the flat amount of every tier with a unit
    -- (quantity 0 falls in the first tier); volume: the whole quantity at the tier containing it
    select
        lines.customer_id,
        lines.meter,
        lines.period_start,
        sum(
            case
                when lines.price_model = 'graduated' then
                    {{ units_in_tier('lines.billable_quantity', 'tiers.lower_bound', 'tiers.up_to') }}
                        * tiers.unit_amount_decimal
                    + case
                        when lines.billable_quantity > tiers.lower_bound or tiers.tier_index = 1
                            then tiers.flat_amount_decimal
                        else 0
                    end
                when (lines.billable_quantity > tiers.lower_bound or tiers.tier_index = 1)
                    and (tiers.up_to is null or lines.billable_quantity <= tiers.up_to)
                    then lines.billable_quantity * tiers.unit_amount_decimal + tiers.flat_amount_decimal
                else 0
            end
        ) as tiered_amount
    from lines
    inner join tiers on lines.meter = tiers.meter
    where lines.price_model in ('graduated', 'volume')
    group by all
)

select
    lines.* exclude (billable_quantity, unit_amount_decimal, package_size, package_round),
    case lines.price_model
        when 'per_unit' then lines.billable_quantity * lines.unit_amount_decimal
        when 'package' then
            {{ package_count('lines.billable_quantity', 'lines.package_size', 'lines.package_round') }}
                * lines.unit_amount_decimal
        else tiered.tiered_amount
    end::decimal(38, 24) as amount_decimal
from lines
left join tiered
    on lines.customer_id = tiered.customer_id
    and lines.meter = tiered.meter
    and lines.period_start = tiered.period_start

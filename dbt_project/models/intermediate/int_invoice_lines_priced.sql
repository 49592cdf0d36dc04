-- Our shadow invoice before rounding: one line per customer x meter x listed period, priced on
-- max(quantity, 0) exactly as Stripe prices it, as an exact decimal amount in cents. A line whose amount
-- could reach max_line_amount_cents is not priced (amount NULL, amount_problem = amount_out_of_range):
-- the bound is checked before any product, so no quantity can overflow the arithmetic.

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

price_bounds as (
    -- every product is at most quantity x the largest unit amount, every sum adds at most the flat amounts
    select
        meters.meter,
        greatest(abs(coalesce(meters.unit_amount_decimal, 0)), coalesce(max(abs(tiers.unit_amount_decimal)), 0))
            as largest_unit_amount,
        coalesce(sum(abs(tiers.flat_amount_decimal)), 0) as flat_amounts
    from meters
    left join tiers on meters.meter = tiers.meter
    group by meters.meter, meters.unit_amount_decimal
),

quantities as (
    select
        listed.customer_id,
        meters.meter,
        listed.period_index,
        listed.period_start,
        listed.period_end,
        coalesce(usage.quantity, 0)::decimal(38, 12) as quantity,
        case
            when price_bounds.largest_unit_amount > {{ var('max_line_amount_cents') }}
                or price_bounds.flat_amounts > {{ var('max_line_amount_cents') }} then false
            when price_bounds.largest_unit_amount = 0 then true
            -- ceil(q) <= limit / unit, in integers scaled by 10^12 (unit amounts have at most 12 decimals)
            else ceil(greatest(coalesce(usage.quantity, 0), 0))::{{ wide_integer_type() }}
                <= {{ integer_divide(
                    var('max_line_amount_cents') ~ '::' ~ wide_integer_type() ~ ' * 1000000000000',
                    'ceil(least(price_bounds.largest_unit_amount, ' ~ var('max_line_amount_cents') ~ ') * 1000000000000)::'
                        ~ wide_integer_type()) }}
        end as is_priceable
    from listed
    cross join meters
    inner join price_bounds on meters.meter = price_bounds.meter
    left join usage
        on listed.customer_id = usage.customer_id
        and meters.meter = usage.meter
        and listed.period_start = usage.period_start
),

lines as (
    select
        quantities.customer_id,
        meters.meter,
        quantities.period_index,
        quantities.period_start,
        quantities.period_end,
        quantities.quantity,
        -- an unpriceable line is priced on 0, so that no product can overflow; its amount is dropped below
        case when quantities.is_priceable then greatest(quantities.quantity, 0) else 0 end::decimal(38, 12)
            as billable_quantity,
        quantities.is_priceable,
        meters.price_model,
        meters.unit_amount_decimal,
        meters.package_size,
        meters.package_round,
        meters.currency,
        meters.price_fingerprint
    from quantities
    inner join meters on quantities.meter = meters.meter
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
                when lines.price_model = 'graduated'
                    then
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
    {{ star_except(
        ['billable_quantity', 'is_priceable', 'unit_amount_decimal', 'package_size', 'package_round'], 'lines'
    ) }},
    case
        when not lines.is_priceable then null
        when lines.price_model = 'per_unit' then lines.billable_quantity * lines.unit_amount_decimal
        when lines.price_model = 'package'
            then
                {{ package_count('lines.billable_quantity', 'lines.package_size', 'lines.package_round') }}
                * lines.unit_amount_decimal
        else tiered.tiered_amount
    end::decimal(38, 24) as amount_decimal,
    case when not lines.is_priceable then 'amount_out_of_range' end as amount_problem
from lines
left join tiered
    on lines.customer_id = tiered.customer_id
    and lines.meter = tiered.meter
    and lines.period_start = tiered.period_start

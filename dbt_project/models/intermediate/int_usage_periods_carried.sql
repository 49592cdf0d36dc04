-- Usage per customer, meter and period: the aggregated periods, plus last_ever meters carried
-- into listed periods without events (the latest value at or before the period's end).

with aggregated as (
    select * from {{ ref('int_usage_periods_aggregated') }}
),

meters as (
    select * from {{ ref('stg_contract__meters') }}
),

listed as (
    select * from {{ ref('int_customer_periods') }}
),

last_ever_grid as (
    -- every listed period and every period with events, for each last_ever meter
    select listed.customer_id, meters.meter, listed.period_index, listed.period_start, listed.period_end
    from listed
    cross join meters
    where meters.aggregation = 'last_ever'
    union
    select customer_id, meter, period_index, period_start, period_end
    from aggregated
    where aggregation = 'last_ever'
),

carried as (
    select
        last_ever_grid.customer_id,
        last_ever_grid.meter,
        last_ever_grid.period_index,
        last_ever_grid.period_start,
        last_ever_grid.period_end,
        aggregated.event_count,
        {{ last_value_ignoring_nulls('aggregated.quantity') }} over (
            partition by last_ever_grid.customer_id, last_ever_grid.meter
            order by last_ever_grid.period_start
            rows between unbounded preceding and current row
        ) as carried_quantity
    from last_ever_grid
    left join aggregated
        on last_ever_grid.customer_id = aggregated.customer_id
        and last_ever_grid.meter = aggregated.meter
        and last_ever_grid.period_start = aggregated.period_start
)

select
    customer_id,
    meter,
    period_index,
    period_start,
    period_end,
    quantity,
    event_count,
    last_event_at,
    false as is_carried
from aggregated

union all

select
    customer_id,
    meter,
    period_index,
    period_start,
    period_end,
    carried_quantity as quantity,
    0 as event_count,
    period_start as last_event_at,
    true as is_carried
from carried
where event_count is null and carried_quantity is not null

-- The periods listed for each customer: from its anchor through the period that contains the
-- latest valid event timestamp of the whole dataset (a data-driven "now", so every line is
-- reproducible from the data).

with customers as (
    select * from {{ ref('stg_contract__customers') }}
),

data_now as (
    select max(event_ts) as latest_event_ts from {{ ref('int_usage_events_deduplicated') }}
),

spans as (
    select
        customers.customer_id,
        customers.billing_anchor,
        {{ period_index('customers.billing_anchor', 'data_now.latest_event_ts') }} as last_period_index
    from customers
    cross join data_now
    where data_now.latest_event_ts >= customers.billing_anchor
),

periods as (
    select
        customer_id,
        billing_anchor,
        {{ each_integer_through('last_period_index') }} as period_index
    from spans
)

select
    customer_id,
    period_index,
    {{ period_start('billing_anchor', 'period_index') }} as period_start,
    {{ period_start('billing_anchor', 'period_index + 1') }} as period_end
from periods

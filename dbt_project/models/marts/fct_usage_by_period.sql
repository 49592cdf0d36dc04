select
    customer_id,
    meter,
    period_start,
    period_end,
    quantity,
    event_count,
    last_event_at,
    is_carried
from {{ ref('int_usage_periods_carried') }}

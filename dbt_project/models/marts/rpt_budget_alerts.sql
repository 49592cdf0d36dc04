{{ config(tags=['reconciliation']) }}

-- Every budget alert with its delivery state: sent (delivered), waiting for a retry (pending, with a dead letter
-- when a run gave up on it), or recorded only (no webhook URL set). Built after the alerts step of the run.

with alerts as (
    select * from {{ ref('stg_ops__budget_alerts') }}
),

dead_letters as (
    select * from {{ source('ops', 'budget_alert_dead_letters') }}
)

select
    alerts.alert_id,
    alerts.alert_type,
    alerts.budget_key,
    alerts.customer_id,
    alerts.period_start,
    alerts.period_end,
    alerts.threshold_percent,
    alerts.sequence,
    alerts.used,
    alerts.limit_value,
    alerts.unit,
    alerts.access,
    alerts.as_of,
    alerts.created_at,
    case
        when alerts.status = 'pending' and dead_letters.alert_id is not null then 'dead_letter'
        else alerts.status
    end as delivery_state,
    alerts.attempts,
    alerts.last_attempt_at,
    alerts.delivered_at,
    alerts.last_error
from alerts
left join dead_letters on alerts.alert_id = dead_letters.alert_id

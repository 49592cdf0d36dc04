import dagster as dg

from metering_dagster.defs.delivery.assets import stripe_dead_letter_retry
from metering_dagster.defs.delivery.checks import dead_letter_checks
from metering_dagster.defs.delivery.schedules import dead_letter_retry_job, dead_letter_retry_schedule

defs = dg.Definitions(
    assets=[stripe_dead_letter_retry],
    asset_checks=dead_letter_checks,
    jobs=[dead_letter_retry_job],
    schedules=[dead_letter_retry_schedule],
)

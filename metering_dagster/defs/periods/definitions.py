from __future__ import annotations

import dagster as dg

from metering_dagster.defs.orchestration.schedules import (
    period_close_schedule,
    post_finalization_reconciliation_schedule,
)
from metering_dagster.defs.periods.assets import closed_period_reconciliation, period_close
from metering_dagster.defs.periods.checks import closed_periods_reconciled, no_invoice_held, stripe_customers_readable
from metering_dagster.defs.periods.jobs import reconciliation_job

defs = dg.Definitions(
    assets=[period_close, closed_period_reconciliation],
    asset_checks=[no_invoice_held, closed_periods_reconciled, stripe_customers_readable],
    jobs=[reconciliation_job],
    schedules=[period_close_schedule, post_finalization_reconciliation_schedule],
)

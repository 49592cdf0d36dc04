"""`budget_alerts_delivered`: fails while an alert is still pending after a run spent its retries on it."""

import dagster as dg

from metering_dagster.budgets.webhooks import undelivered_dead_letters
from metering_dagster.defs.budgets.assets import BUDGET_ALERTS_ASSET
from metering_dagster.defs.check_results import rows_result
from metering_dagster.defs.resources import MeteringResource

DELIVERED_CHECK = "budget_alerts_delivered"
DEAD_LETTER_KEYS = (
    "customer_id",
    "budget",
    "alert_type",
    "threshold_percent",
    "period_start",
    "alert_id",
    "attempts",
    "failed_at",
    "last_error",
)


def evaluate_alert_delivery(con) -> dg.AssetCheckResult:
    rows = [tuple(str(v) for v in row) for row in undelivered_dead_letters(con)]
    return rows_result(
        rows,
        DEAD_LETTER_KEYS,
        severity=dg.AssetCheckSeverity.ERROR,
        ok="every budget alert delivered or still within its retries",
        failed="{n} budget alerts not delivered after every retry of a run (the next run tries again): {customers}",
        extra={"undelivered": len(rows)},
    )


@dg.asset_check(
    asset=dg.AssetKey(BUDGET_ALERTS_ASSET),
    name=DELIVERED_CHECK,
    blocking=False,
    description=(
        "Fails while a budget alert is pending past its retries (in ops.budget_alert_dead_letters, not delivered);"
        " names each customer, alert and the receiver's last error."
    ),
)
def budget_alerts_delivered(metering: MeteringResource) -> dg.AssetCheckResult:
    with metering.warehouse() as con:
        return evaluate_alert_delivery(con)

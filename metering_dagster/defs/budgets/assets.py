"""Budget alerts: evaluated from marts.fct_budget_status, recorded in the outbox, sent as signed webhooks."""

from datetime import UTC, datetime

import dagster as dg

from metering_dagster.budgets.evaluate import CLEARED, REACHED, evaluate_alerts
from metering_dagster.budgets.webhooks import DeliveryPolicy, deliver_pending
from metering_dagster.defs.resources import MeteringResource
from metering_dagster.progress import report
from metering_dagster.settings import webhook_settings

BUDGET_ALERTS_ASSET = "budget_alerts"
BUDGET_STATUS_KEY = dg.AssetKey(["marts", "fct_budget_status"])


@dg.asset(
    name=BUDGET_ALERTS_ASSET,
    group_name="budgets",
    kinds={"duckdb"},
    deps=[BUDGET_STATUS_KEY],
    description=(
        "Alerts of the current billing periods: a threshold of a budget reached (once per period), or a block"
        " lifted by a correction; recorded in ops.budget_alerts and, when METERING_WEBHOOK_URL is set, sent to it"
        " as signed Standard Webhooks (same id on every retry; what fails stays pending for the next run)."
    ),
)
def budget_alerts(context: dg.AssetExecutionContext, metering: MeteringResource) -> dg.MaterializeResult:
    hooks = webhook_settings()
    with metering.warehouse() as con:
        created = evaluate_alerts(con, evaluated_at=datetime.now(UTC), webhook_configured=hooks.url is not None)
        if created:  # one log event for all of them: alerts are printed even when no webhook is set
            context.log.info("\n".join(alert.line() for alert in created))
        report(f"budget alerts: {len(created)} new", done=hooks.url is None)
        delivery = (
            deliver_pending(con, hooks.url, hooks.secret, policy=DeliveryPolicy.from_settings(hooks))
            if hooks.url is not None
            else None
        )
    metadata: dict[str, object] = {
        "new_alerts": len(created),
        "reached": sum(a.alert_type == REACHED for a in created),
        "cleared": sum(a.alert_type == CLEARED for a in created),
        "webhook": "not set: alerts recorded, not sent" if delivery is None else delivery.receiver,
    }
    if delivery is not None:
        context.log.info(delivery.summary())
        if delivery.failed:
            context.log.warning(delivery.summary())
        metadata.update(delivery.metadata())
    return dg.MaterializeResult(metadata=metadata)

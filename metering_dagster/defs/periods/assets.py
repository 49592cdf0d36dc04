"""Period close and the post-finalization reconciliation."""

import dagster as dg

from metering_dagster.defs.billing.assets import stripe_snapshot
from metering_dagster.defs.billing.resources import StripeResource
from metering_dagster.defs.resources import MeteringResource
from metering_dagster.defs.transform.keys import model_key
from metering_dagster.periods.close import close_periods
from metering_dagster.periods.reconcile import record_closed_period_results
from metering_dagster.quality.holds import held_reasons


@dg.asset(
    group_name="periods",
    kinds={"stripe", "duckdb"},
    deps=[stripe_snapshot],
    description=(
        "Period close: Stripe's period invoices, holds on incomplete sources (watermarks), the final upload"
        " inside the grace period, late usage of finalized periods as adjustments on the next invoice."
    ),
)
def period_close(
    context: dg.AssetExecutionContext, metering: MeteringResource, stripe: StripeResource
) -> dg.MaterializeResult:
    settings = metering.settings()
    contract = metering.contract()
    with stripe.connect(settings, contract) as conn, metering.warehouse() as con:
        result = close_periods(
            conn.client,
            con,
            contract,
            raw_dir=settings.raw_dir,
            state_dir=settings.state_dir,
            held=held_reasons(con, contract),
        )
    # One log event for the report, one for its alerts: an event a line costs ~10 ms of Dagster's
    # event log each, seconds at a thousand customers closing the same day.
    lines = result.lines()
    context.log.info("\n".join(lines))
    alerts = [line for line in lines if line.startswith(("ALERT", "WARNING"))]
    if alerts:
        context.log.warning("\n".join(alerts))
    return dg.MaterializeResult(metadata=result.metadata())


@dg.asset(
    group_name="periods",
    kinds={"duckdb"},
    deps=[model_key("rpt_reconciliation")],
    description="Per customer and finalized period: does Stripe's final invoice (with its adjustments) match ours.",
)
def closed_period_reconciliation(metering: MeteringResource) -> dg.MaterializeResult:
    with metering.warehouse() as con:
        results = record_closed_period_results(con)
    differ = sorted({r.customer_id for r in results if r.result != "match"})
    return dg.MaterializeResult(
        metadata={
            "customer_periods": len(results),
            "with_differences": len([r for r in results if r.result != "match"]),
            "customers_with_differences": ", ".join(differ) or "-",
        }
    )

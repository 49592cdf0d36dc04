"""Alerts of period close, as asset checks that the UI shows failing."""

from __future__ import annotations

import dagster as dg

from metering_dagster.billing.problems import recorded_problems
from metering_dagster.defs.check_results import rows_result
from metering_dagster.defs.periods.assets import closed_period_reconciliation, period_close
from metering_dagster.defs.resources import MeteringResource


@dg.asset_check(
    asset=period_close,
    name="no_invoice_held",
    description="No draft invoice is held because a source feeding its customer is not complete past the period end.",
)
def no_invoice_held(metering: MeteringResource) -> dg.AssetCheckResult:
    with metering.warehouse() as con:
        rows = con.execute(
            """SELECT customer_id, period_start::VARCHAR, stripe_invoice_id, hold_reason FROM ops.period_invoices
               WHERE held_at IS NOT NULL AND released_at IS NULL AND status = 'draft' ORDER BY 1, 2"""
        ).fetchall()
    return rows_result(
        rows,
        ("customer_id", "period_start", "invoice", "reason"),
        severity=dg.AssetCheckSeverity.WARN,
        ok="no invoice held",
        failed="{n} invoices held until their sources are complete: {customers}",
        extra={"held": len(rows)},
    )


@dg.asset_check(
    asset=closed_period_reconciliation,
    name="closed_periods_reconciled",
    description="Every customer's finalized periods match Stripe (invoice plus adjustments) to the cent.",
)
def closed_periods_reconciled(metering: MeteringResource) -> dg.AssetCheckResult:
    with metering.warehouse() as con:
        rows = con.execute(
            """SELECT customer_id, period_start::VARCHAR, differences, detail FROM ops.period_reconciliation
               WHERE result <> 'match' ORDER BY 1, 2"""
        ).fetchall()
        total = con.execute("SELECT count(*) FROM ops.period_reconciliation").fetchone()[0]
    return rows_result(
        rows,
        ("customer_id", "period_start", "differences", "detail"),
        severity=dg.AssetCheckSeverity.ERROR,
        ok=f"{total} finalized customer periods reconciled, no difference",
        failed="{n} finalized customer periods differ: {customers}",
        extra={
            "customer_periods": total,
            "differences": len(rows),
            "customers_with_differences": ", ".join(sorted({r[0] for r in rows})) or "-",
        },
    )


@dg.asset_check(
    asset=period_close,
    name="stripe_customers_readable",
    description=(
        "Every customer's Stripe objects, invoices and previews could be read in the last object sync, snapshot and"
        " period close; a customer whose reads failed is named with the step and Stripe's error (the others were"
        " billed, closed and reconciled)."
    ),
)
def stripe_customers_readable(metering: MeteringResource) -> dg.AssetCheckResult:
    with metering.warehouse() as con:
        rows = recorded_problems(con)
    return rows_result(
        rows,
        ("customer_id", "step", "problem"),
        severity=dg.AssetCheckSeverity.ERROR,
        ok="every customer's Stripe reads succeeded",
        failed="Stripe could not be read for {customers} ({n} problems): their reconciliation is out of date",
        extra={"problems": len(rows)},
    )

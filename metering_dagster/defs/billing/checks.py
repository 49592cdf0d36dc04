"""Reconciliation as an asset check: our shadow invoice against Stripe's, per customer."""

from __future__ import annotations

import dagster as dg

from metering_dagster.defs.billing.assets import stripe_billing_objects
from metering_dagster.defs.check_results import rows_result
from metering_dagster.defs.resources import MeteringResource
from metering_dagster.defs.transform.keys import model_key
from metering_dagster.schema import ensure_billing_tables

SETTLED = ("match", "not_yet_invoiced")


@dg.asset_check(
    asset=model_key("rpt_reconciliation"),
    name="stripe_matches_shadow_invoice",
    description="Every customer, meter and period that Stripe has invoiced matches our quantity and amount to the cent.",
)
def stripe_matches_shadow_invoice(metering: MeteringResource) -> dg.AssetCheckResult:
    with metering.warehouse() as con:
        rows = con.execute(
            """
            select customer_id, meter, period_start::varchar, status,
                   local_quantity::varchar, stripe_quantity::varchar,
                   local_amount_cents, stripe_amount_cents
            from marts.rpt_reconciliation
            where status not in (?, ?)
            order by customer_id, meter, period_start
            """,
            list(SETTLED),
        ).fetchall()
        total = con.execute("select count(*) from marts.rpt_reconciliation").fetchone()[0]
    differences = [
        dict(
            zip(
                (
                    "customer_id",
                    "meter",
                    "period_start",
                    "status",
                    "local_quantity",
                    "stripe_quantity",
                    "local_amount_cents",
                    "stripe_amount_cents",
                ),
                row,
            )
        )
        for row in rows
    ]
    customers = sorted({d["customer_id"] for d in differences})
    return dg.AssetCheckResult(
        passed=not differences,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"{total} lines reconciled, no difference"
            if not differences
            else f"{len(differences)} of {total} lines differ for customers {', '.join(customers)}"
        ),
        metadata={
            "lines": total,
            "differences": len(differences),
            "customers_with_differences": ", ".join(customers) or "-",
            "details": dg.MetadataValue.json(differences[:50]),
        },
    )


@dg.asset_check(
    asset=stripe_billing_objects,
    name="stripe_periods_match_contract",
    description=(
        "Every subscription's billing periods (its current period and the ones its billing anchor gives) are the"
        " contract's: a drifted anchor would move usage into other periods and surface as adjustments."
    ),
)
def stripe_periods_match_contract(metering: MeteringResource) -> dg.AssetCheckResult:
    with metering.warehouse() as con:
        ensure_billing_tables(con)
        rows = con.execute(
            """SELECT customer_id, stripe_subscription_id, problem FROM ops.stripe_subscription_periods
               WHERE problem IS NOT NULL ORDER BY 1"""
        ).fetchall()
        total = con.execute("SELECT count(*) FROM ops.stripe_subscription_periods").fetchone()[0]
    return rows_result(
        rows,
        ("customer_id", "subscription", "problem"),
        severity=dg.AssetCheckSeverity.ERROR,
        ok=f"{total} subscriptions bill the contract's periods",
        failed="{n} subscriptions bill other periods than the contract: "
        + "; ".join(f"{c}: {problem}" for c, _, problem in rows[:3]).replace("{", "{{").replace("}", "}}")
        + (" ..." if len(rows) > 3 else ""),
        extra={"subscriptions": total, "customers_with_differences": ", ".join(r[0] for r in rows) or "-"},
    )


@dg.asset_check(
    asset=model_key("rpt_stripe_budget_alerts"),
    name="stripe_budget_alerts_agree",
    description=(
        "Stripe's billing alert fired in every period where a quantity budget reached 100% by our count, and only"
        " there (Stripe's one_time alerts fire once per customer: later periods are not differences)."
    ),
)
def stripe_budget_alerts_agree(metering: MeteringResource) -> dg.AssetCheckResult:
    with metering.warehouse() as con:
        rows = con.execute(
            """select customer_id, budget_key, period_start::varchar, status, local_used::varchar,
                      stripe_value::varchar
               from marts.rpt_stripe_budget_alerts
               where status not in ('match', 'stripe_alert_spent')
               order by customer_id, budget_key, period_start"""
        ).fetchall()
        compared = con.execute("select count(*) from marts.rpt_stripe_budget_alerts").fetchone()[0]
    return rows_result(
        rows,
        ("customer_id", "budget_key", "period_start", "status", "local_used", "stripe_value"),
        severity=dg.AssetCheckSeverity.WARN,
        ok=f"{compared} budget periods at 100%: Stripe's billing alerts agree",
        failed="{n} budget periods where Stripe's billing alert and ours disagree",
        extra={"compared": compared},
    )


defs = dg.Definitions(
    asset_checks=[stripe_matches_shadow_invoice, stripe_periods_match_contract, stripe_budget_alerts_agree]
)

"""Delivery checks on the upload: nothing left undelivered (`usage_delivered`), and nothing waiting in the
dead-letter table longer than a set age (`no_stale_dead_letters`, `METERING_DEAD_LETTER_MAX_AGE_SECONDS`)."""

from collections import defaultdict

import dagster as dg

from metering_dagster.billing import deadletter, error_reports, ledger
from metering_dagster.billing.months import from_epoch
from metering_dagster.defs.delivery.assets import DEAD_LETTER_ASSET
from metering_dagster.defs.resources import MeteringResource
from metering_dagster.settings import dead_letter_max_age_seconds
from metering_dagster.warehouse import utc_date

DELIVERY_CHECK = "usage_delivered"


def max_age_seconds() -> int:
    return dead_letter_max_age_seconds(deadletter.DEFAULT_MAX_AGE_SECONDS)


def evaluate_dead_letters(con, max_age: int) -> dg.AssetCheckResult:
    letters = deadletter.open_letters(con)
    stale = [d for d in letters if d.age_seconds > max_age]
    return dg.AssetCheckResult(
        passed=not stale,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"{len(letters)} open dead letters, none older than {max_age} s"
            if not stale
            else f"{len(stale)} dead letters older than {max_age} s (oldest {stale[0].age_seconds} s): "
            f"{stale[0].customer_id}/{stale[0].meter}: {stale[0].error}"
        ),
        metadata={
            "open": len(letters),
            "older_than_max_age": len(stale),
            "max_age_seconds": max_age,
            "oldest_age_seconds": max((d.age_seconds for d in letters), default=0),
            "details": dg.MetadataValue.json(
                [
                    {
                        "identifier": d.identifier,
                        "customer_id": d.customer_id,
                        "meter": d.meter,
                        "error": d.error,
                        "age_seconds": d.age_seconds,
                        "retries": d.retries,
                    }
                    for d in stale[:50]
                ]
            ),
        },
    )


def undelivered(con) -> list[dict[str, str]]:
    """Usage Stripe does not hold and will not get without attention, one entry per customer, meter,
    period and reason: dead letters still open after the upload re-sent them, rows Stripe refused,
    customers whose events Stripe refuses, keys whose Stripe usage could not be read (baseline.py)."""
    error_reports.ensure_tables(con)
    deadletter.ensure_table(con)
    out = [
        {"customer_id": c, "meter": m, "period_start": str(ps), "reason": f"dead letter: {error}"}
        for c, m, ps, error in con.execute(
            f"""SELECT customer_id, meter, {utc_date("period_start")}, error FROM ops.stripe_dead_letters
               WHERE resolved_at IS NULL ORDER BY ALL"""
        ).fetchall()
    ]
    out += [
        {
            "customer_id": h.customer_id,
            "meter": "*",
            "period_start": "*",
            "reason": f"Stripe refuses its events ({h.code}: {h.message}); held until its Stripe customer exists",
        }
        for h in error_reports.held_customers(con)
    ]
    out += [
        {"customer_id": c, "meter": m, "period_start": str(ps), "reason": f"refused by Stripe: {error}"}
        for c, m, ps, error in con.execute(
            f"""SELECT customer_id, meter, {utc_date("period_start")}, coalesce(last_error, rejected_code) FROM ops.stripe_ledger
               WHERE status = 'pending' AND rejected_code IS NOT NULL
                 AND customer_id NOT IN (SELECT customer_id FROM ops.stripe_rejected_customers)
               ORDER BY ALL"""
        ).fetchall()
    ]
    incarnation = ledger.ensure_ledger(con)
    out += [
        {
            "customer_id": c,
            "meter": m,
            "period_start": str(from_epoch(ps).date()),
            "reason": "what Stripe already holds could not be read: nothing is sent until it is"
            if stripe_customer
            else "no Stripe customer yet: what Stripe holds is read once the object sync gives it one",
        }
        for c, m, ps, _, stripe_customer, _ in ledger.keys_awaiting_baseline(con, incarnation)
    ]
    return out


def evaluate_delivery(con) -> dg.AssetCheckResult:
    problems = undelivered(con)
    by_customer: dict[str, list[str]] = defaultdict(list)
    for p in problems:
        by_customer[p["customer_id"]].append(p["reason"])
    named = "; ".join(
        f"{c}: {reasons[0]}" + (f" (+{len(reasons) - 1} more)" if len(reasons) > 1 else "")
        for c, reasons in sorted(by_customer.items())
    )
    return dg.AssetCheckResult(
        passed=not problems,
        severity=dg.AssetCheckSeverity.ERROR,
        description="all usage delivered or on its way"
        if not problems
        else f"usage of {len(by_customer)} customers not delivered to Stripe: {named}"[:2000],
        metadata={
            "customers": ", ".join(sorted(by_customer)) or "-",
            "undelivered": len(problems),
            "details": dg.MetadataValue.json(problems[:100]),
        },
    )


def _checks(asset: str) -> list:
    @dg.asset_check(
        asset=dg.AssetKey(asset),
        name="no_stale_dead_letters",
        description="Fails while any row of ops.stripe_dead_letters has been open longer than the set age.",
    )
    def _no_stale_dead_letters(metering: MeteringResource) -> dg.AssetCheckResult:
        with metering.warehouse() as con:
            return evaluate_dead_letters(con, max_age_seconds())

    @dg.asset_check(
        asset=dg.AssetKey(asset),
        name=DELIVERY_CHECK,
        description=(
            "Fails while usage is not delivered and will not be without attention: dead letters the upload could"
            " not re-send, meter events Stripe refused after accepting them, customers whose events Stripe refuses,"
            " usage Stripe already held that could not be read; names each customer and why."
        ),
    )
    def _usage_delivered(metering: MeteringResource) -> dg.AssetCheckResult:
        with metering.warehouse() as con:
            return evaluate_delivery(con)

    return [_no_stale_dead_letters, _usage_delivered]


upload_checks = _checks("stripe_usage_report")
dead_letter_checks = [*upload_checks, *_checks(DEAD_LETTER_ASSET)]

"""Whether Stripe's side may have changed since a run saw it: what a run with nothing new must still look at.

From what the warehouse already knows, without asking Stripe more than its time: a billing period that ended or
finalized (its end plus the grace period) between Stripe's time the last run saw and now, and a customer whose
Stripe view the snapshot would read again (the reasons of `snapshot.customers_to_read`: no snapshot or one older
than `METERING_STRIPE_VERIFY_HOURS`, sent to since its snapshot, its invoices changed, its reads failed, not a
match last time).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import duckdb

from metering_dagster.billing.months import period_index
from metering_dagster.billing.snapshot import customers_changed_since_snapshot, customers_not_matching
from metering_dagster.contract.model import Contract
from metering_dagster.display import count
from metering_dagster.settings import stripe_verify_hours


def _finalized_between(contract: Contract, seen: datetime, now: datetime) -> list[str]:
    """Customers with a period whose invoice finalized (end + grace) in (seen, now]."""
    grace = timedelta(seconds=contract.grace_period_seconds)
    return [
        c.id
        for c in contract.customers
        if period_index(c.billing_anchor, now - grace) != period_index(c.billing_anchor, seen - grace)
    ]


def period_invoices_state(con: duckdb.DuckDBPyConnection) -> str:
    """What we know of each period's invoice, in one value (not when it was read: every run reads it again)."""
    try:
        row = con.execute(
            """SELECT count(*), coalesce(bit_xor(hash(customer_id, period_start, period_end, stripe_invoice_id, status,
               auto_advance, finalizes_at, finalized, held_at, hold_reason, released_at)), 0)
               FROM ops.period_invoices"""
        ).fetchone()
    except duckdb.CatalogException:
        return "-"
    return f"{row[0]}/{row[1]}"


def _customers_changed(con: duckdb.DuckDBPyConnection) -> set[str]:
    """The customers the snapshot would read again (`snapshot.customers_to_read`), but for their invoices' state:
    every run reads it again (`synced_at`), so it is compared whole (`period_invoices_state`)."""
    due = {
        r[0]
        for r in con.execute(
            """SELECT c.customer_id FROM ops.stripe_customers c LEFT JOIN ops.stripe_snapshot_state s USING (customer_id)
               WHERE s.snapshot_at IS NULL OR s.snapshot_at < ?""",
            [datetime.now(UTC) - timedelta(hours=stripe_verify_hours())],
        ).fetchall()
    }
    not_matching = customers_not_matching(con)
    if not_matching is None:
        not_matching = {"(no reconciliation yet)"}
    return due | customers_changed_since_snapshot(con, invoice_syncs=False) | not_matching


def stripe_change_since(
    con: duckdb.DuckDBPyConnection,
    contract: Contract,
    stripe_now: datetime,
    seen_stripe_now: datetime,
    seen_invoices: str,
    run_finished_at: datetime,
) -> str | None:
    """Why Stripe's view may differ from what the last completed run saw (Stripe's time `seen_stripe_now`, the
    invoices' state `seen_invoices`, the snapshot it reconciled: none since it finished), or None when it cannot."""
    now, seen = stripe_now.astimezone(UTC), seen_stripe_now.astimezone(UTC)
    if now < seen:
        return f"Stripe's time went back from {seen.isoformat()} to {now.isoformat()}"
    crossed = [
        c.id for c in contract.customers if period_index(c.billing_anchor, now) != period_index(c.billing_anchor, seen)
    ]
    if crossed:
        return f"a billing period of {count(len(crossed), 'customer')} ended since Stripe's time {seen.isoformat()}"
    finalized = _finalized_between(contract, seen, now)
    if finalized:
        return f"the invoices of {count(len(finalized), 'customer')} finalized since Stripe's time {seen.isoformat()}"
    try:
        if period_invoices_state(con) != seen_invoices:
            return "the state of a period's invoice changed in Stripe"
        # e.g. the post-finalization reconciliation job read Stripe again: its rows are not reconciled yet
        read_since = con.execute(
            "SELECT count(*) FROM ops.stripe_snapshot_state WHERE snapshot_at > ?", [run_finished_at]
        ).fetchone()[0]
        if read_since:
            return f"Stripe's view of {count(read_since, 'customer')} was read again since the last run"
        changed = _customers_changed(con)
    except duckdb.CatalogException:  # no Stripe object synced yet
        return "no Stripe snapshot yet"
    if changed:
        return f"Stripe's view of {count(len(changed), 'customer')} may have changed since its last snapshot"
    return None

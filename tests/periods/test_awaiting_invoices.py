"""Which customers a refresh of the period invoices reads from Stripe, and how: in full where a new period's
invoice is to be found or a draft is due, through the lists of invoices that left draft where recorded drafts
are not due."""

from datetime import UTC, datetime, timedelta

import duckdb

from metering_dagster.billing.invoices import customers_awaiting_invoices
from metering_dagster.schema import ensure_billing_tables, ensure_period_tables

UTC = UTC
OCT, NOV = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)
STRIPE_NOW = NOV + timedelta(minutes=30)  # inside the October invoices' grace period


def test_drafts_that_are_not_due_are_watched_not_read(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    ensure_billing_tables(con)
    ensure_period_tables(con)
    for customer in ("waiting", "due", "held", "unseen", "final"):
        con.execute(
            "INSERT INTO ops.stripe_customers VALUES (?, 'cus_' || ?, NULL, 'sub_' || ?, ?, now())",
            [customer, customer, customer, OCT],
        )
    drafts = {  # customer: (status, finalizes_at)
        "waiting": ("draft", NOV + timedelta(hours=1)),
        "due": ("draft", NOV + timedelta(minutes=10)),  # Stripe may have finalized it since
        "held": ("draft", None),  # auto_advance off: only period close or a person finalizes it
        "final": ("open", None),
    }
    for customer, (status, finalizes_at) in drafts.items():
        con.execute(
            """INSERT INTO ops.period_invoices (customer_id, period_start, period_end, stripe_invoice_id, status,
                   auto_advance, finalizes_at, finalized, synced_at) VALUES (?, ?, ?, 'in_' || ?, ?, true, ?, ?, now())""",
            [customer, OCT, NOV, customer, status, finalizes_at, status != "draft"],
        )
    awaiting = customers_awaiting_invoices(con, STRIPE_NOW)
    assert awaiting.read == {"due": NOV.timestamp(), "unseen": NOV.timestamp()}
    assert awaiting.watched == {"waiting": NOV.timestamp(), "held": NOV.timestamp()}
    # At the next period end every customer has a new invoice to find: all are read in full.
    later = customers_awaiting_invoices(con, NOV + timedelta(days=31))
    assert set(later.read) == {"waiting", "due", "held", "unseen", "final"} and not later.watched
    assert (
        later.read["waiting"] == NOV.timestamp()
        and later.read["final"] == datetime(2026, 12, 1, tzinfo=UTC).timestamp()
    )

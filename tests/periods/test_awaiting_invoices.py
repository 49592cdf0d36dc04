"""Which customers period close reads from Stripe: everyone whose period invoice can still change, except,
within one run, drafts the run has already read and that do not finalize yet."""

from datetime import datetime, timedelta, timezone

import duckdb

from metering_dagster.billing.tables import ensure_billing_tables
from metering_dagster.periods.invoices import customers_awaiting_invoices
from metering_dagster.periods.tables import ensure_period_tables

UTC = timezone.utc
OCT, NOV = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)
STRIPE_NOW = NOV + timedelta(minutes=30)  # inside the October invoices' grace period


def test_a_run_does_not_read_again_the_drafts_it_read(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    ensure_billing_tables(con)
    ensure_period_tables(con)
    run_started = datetime.now(UTC) - timedelta(minutes=5)
    read_in_run, read_before = run_started + timedelta(minutes=1), run_started - timedelta(hours=1)
    for customer in ("read_now", "read_earlier", "due", "held", "unseen", "final"):
        con.execute("INSERT INTO ops.stripe_customers VALUES (?, 'cus_' || ?, NULL, 'sub_' || ?, ?, now())",
                    [customer, customer, customer, OCT])
    drafts = {  # customer: (status, finalizes_at, read at)
        "read_now": ("draft", NOV + timedelta(hours=1), read_in_run),
        "read_earlier": ("draft", NOV + timedelta(hours=1), read_before),
        "due": ("draft", NOV + timedelta(minutes=10), read_in_run),  # Stripe may have finalized it since
        "held": ("draft", None, read_in_run),  # auto_advance off: only period close itself finalizes it
        "final": ("open", None, read_in_run),
    }
    for customer, (status, finalizes_at, synced_at) in drafts.items():
        con.execute(
            """INSERT INTO ops.period_invoices (customer_id, period_start, period_end, stripe_invoice_id, status,
                   auto_advance, finalizes_at, finalized, synced_at) VALUES (?, ?, ?, 'in_' || ?, ?, true, ?, ?, ?)""",
            [customer, OCT, NOV, customer, status, finalizes_at, status != "draft", synced_at],
        )
    every_open = {"read_now", "read_earlier", "due", "held", "unseen"}
    assert set(customers_awaiting_invoices(con, STRIPE_NOW)) == every_open
    assert set(customers_awaiting_invoices(con, STRIPE_NOW, read_after=run_started)) == {"read_earlier", "due", "unseen"}
    # At the next period end every customer has a new invoice to find, read in this run or not.
    assert set(customers_awaiting_invoices(con, NOV + timedelta(days=31), read_after=run_started)) == every_open | {"final"}

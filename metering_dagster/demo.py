"""`metering demo`: the whole story on the shipped data, through the same commands a user has.

1. Reset the demo state (warehouse, emulator, analysts' copy).
2. Move the Stripe test clock to 00:30 on 1 November: October has ended, its invoice is a
   draft inside the one-hour grace period.
3. `metering run`: land October's logs, validate, dedupe, aggregate, gate, report to Stripe.
4. Move the clock to 02:00: the grace period is over, Stripe finalizes the invoice.
5. `metering run` again: nothing new is sent; Stripe's final invoice is reconciled against ours.
"""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import duckdb

from metering_dagster.settings import Settings
from metering_dagster.warehouse import connect

IN_GRACE = datetime(2026, 11, 1, 0, 30, tzinfo=timezone.utc)
AFTER_GRACE = datetime(2026, 11, 1, 2, 0, tzinfo=timezone.utc)


def _step(text: str) -> None:
    print(f"\n== {text}")


def _qty(value: Decimal | None) -> str:
    return "-" if value is None else format(value.normalize(), "f")


def _or_dash(value) -> str:
    return "-" if value is None else str(value)


def print_invoices(settings: Settings) -> None:
    con = connect(settings.warehouse_path, read_only=True)
    try:
        rows = con.execute(
            """
            select r.customer_id, r.meter, r.period_start::date, r.local_quantity, r.stripe_quantity,
                   r.local_amount_cents, r.stripe_amount_cents, r.status
            from marts.rpt_reconciliation as r
            order by r.customer_id, r.period_start, r.meter
            """
        ).fetchall()
        invoices = con.execute(
            """
            select customer_id, stripe_invoice_id, invoice_status, sum(amount_cents)
            from stripe_view.invoice_lines where invoice_status <> 'preview'
            group by all order by 1, 2
            """
        ).fetchall()
    finally:
        con.close()
    print(f"{'customer':<14}{'meter':<22}{'period':<12}{'our qty':>16}{'stripe qty':>16}{'ours ¢':>10}{'stripe ¢':>10}  status")
    for c, m, p, lq, sq, la, sa, st in rows:
        print(f"{c:<14}{m:<22}{str(p):<12}{_qty(lq):>16}{_qty(sq):>16}{_or_dash(la):>10}{_or_dash(sa):>10}  {st}")
    print()
    for customer, invoice, status, total in invoices:
        print(f"Stripe invoice {invoice} for {customer}: {status}, total {total / 100:.2f}")


def run_demo(settings: Settings) -> int:
    from metering_dagster.cli import advance_clock, reset_state, run_once

    _step(f"Resetting demo state in {settings.state_dir}")
    reset_state(settings)
    _step(f"Stripe test clock -> {IN_GRACE.isoformat()} (October closed, its invoice is a draft in the grace period)")
    code = advance_clock(settings, IN_GRACE)
    if code:
        return code
    _step("metering run: land, validate, dedupe, aggregate, gate, report usage to Stripe")
    code = run_once(settings)
    if code:
        return code
    _step(f"Stripe test clock -> {AFTER_GRACE.isoformat()} (grace over: Stripe finalizes the invoice)")
    code = advance_clock(settings, AFTER_GRACE)
    if code:
        return code
    _step("metering run: nothing new to send; reconcile Stripe's final invoice against ours")
    code = run_once(settings)
    if code:
        return code
    _step("Reconciliation, per customer, meter and period")
    print_invoices(settings)
    print("\nOpen the Dagster UI with `make dev`; query the marts with "
          "`.venv/bin/metering query \"select * from marts.rpt_reconciliation\"`.")
    return 0

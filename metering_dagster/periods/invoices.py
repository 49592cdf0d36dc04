"""What Stripe did with each period: its subscription invoice's state, and what a final invoice billed.

`refresh_period_invoices` reads every subscription-cycle invoice of our customers into
`ops.period_invoices` (one row per customer × period, the period taken from its metered lines) and,
the first time an invoice is seen finalized, freezes its metered lines (quantity, amount) into
`ops.invoiced_lines`: the baseline of every later adjustment. Holds, releases and the upload
watermark (`uploaded_through_run`) set by period close are kept across refreshes.

Given Stripe's `now`, only customers that can have news are read: those with a period that has
ended by then but no finalized invoice recorded for it (Stripe drafts the invoice at period end and
finalizes it after its grace), and those with a draft recorded. Between period ends that is
nobody, so an hourly run makes no request here; at period close, one list per customer until
its invoice is final. Within one run (`read_after`: the run's start), a customer whose drafts
were all read already and none of which finalizes by `now` is not read again: the object sync
reads them before the upload, period close would read the same statuses minutes later.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import duckdb
import stripe

from metering_dagster.billing.periods import add_months, epoch, period_index
from metering_dagster.billing.reads import invoice_lines_of, invoices_of
from metering_dagster.billing.snapshot import MeterOfPrice, line_quantity
from metering_dagster.billing.values import metadata_of
from metering_dagster.periods.tables import ADJUSTMENT_KEY, FINALIZED, ensure_period_tables
from metering_dagster.warehouse import insert_rows


@dataclass(frozen=True)
class PeriodInvoice:
    customer_id: str
    stripe_invoice_id: str
    period_start: int
    period_end: int
    status: str
    auto_advance: bool
    finalizes_at: int | None

    @property
    def finalized(self) -> bool:
        return self.status in FINALIZED


def _metered_lines(client: stripe.StripeClient, invoice: Any, meter_of: MeterOfPrice) -> list[tuple[str, Any]]:
    out = []
    for line in invoice_lines_of(client, invoice):
        if ADJUSTMENT_KEY in metadata_of(line):
            continue
        meter = meter_of(line)
        if meter is not None and line.get("period") is not None:
            out.append((meter, line))
    return out


def customers_awaiting_invoices(con: duckdb.DuckDBPyConnection, now: datetime,
                                read_after: datetime | None = None) -> dict[str, int]:
    """{customer: the earliest end of a period whose invoice can still change} (module doc).

    A customer is listed when its last ended period has no finalized invoice recorded, or when it
    has a draft recorded. Stripe creates a period's invoice at the period's end. With `read_after`,
    a customer is left out when every unfinalized invoice of it is a draft read since then that
    does not finalize by `now`, and its last ended period's invoice is recorded.
    """
    recorded = {
        (c, ps): final for c, ps, final in con.execute(
            "SELECT customer_id, epoch(period_start)::BIGINT, finalized FROM ops.period_invoices").fetchall()
    }
    out: dict[str, int] = {}
    settled: set[str] = set()  # read in this run, nothing due: no news possible but a new period's invoice
    for customer_id, period_end, read_in_run in con.execute(
        """SELECT customer_id, epoch(min(period_end))::BIGINT,
                  bool_and(status = 'draft' AND synced_at >= ? AND coalesce(finalizes_at > ?, true))
           FROM ops.period_invoices WHERE NOT finalized GROUP BY 1""",
        [read_after, now],
    ).fetchall():
        out[customer_id] = period_end
        if read_after is not None and read_in_run:
            settled.add(customer_id)
    now = now.astimezone(timezone.utc)
    for customer_id, anchor in con.execute(
        "SELECT customer_id, billing_anchor FROM ops.stripe_customers WHERE stripe_subscription_id IS NOT NULL"
    ).fetchall():
        anchor = anchor.astimezone(timezone.utc)  # month arithmetic in UTC, as Stripe bills
        k = period_index(anchor, now)
        last_ended = epoch(add_months(anchor, k - 1))
        if k >= 1 and not recorded.get((customer_id, last_ended), False):
            ended = epoch(add_months(anchor, k))
            out[customer_id] = min(out.get(customer_id, ended), ended)
            if (customer_id, last_ended) not in recorded:
                settled.discard(customer_id)
    return {c: end for c, end in out.items() if c not in settled}


def refresh_period_invoices(client: stripe.StripeClient, con: duckdb.DuckDBPyConnection,
                            now: datetime | None = None, read_after: datetime | None = None) -> list[PeriodInvoice]:
    """Bring `ops.period_invoices` and `ops.invoiced_lines` up to what Stripe holds at `now` (module doc).

    Without `now`, every invoice of every customer is read. `read_after`: see `customers_awaiting_invoices`.
    """
    ensure_period_tables(con)
    meter_of = MeterOfPrice(client, con)
    frozen = {
        (c, int(ps.timestamp()))
        for c, ps in con.execute("SELECT DISTINCT customer_id, period_start FROM ops.invoiced_lines").fetchall()
    }
    known_final = {r[0] for r in con.execute("SELECT stripe_invoice_id FROM ops.period_invoices WHERE finalized").fetchall()}
    customers = con.execute(
        """SELECT customer_id, stripe_customer_id, stripe_subscription_id FROM ops.stripe_customers
           WHERE stripe_subscription_id IS NOT NULL ORDER BY 1"""
    ).fetchall()
    since = None
    if now is not None:
        awaiting = customers_awaiting_invoices(con, now, read_after)
        customers = [c for c in customers if c[0] in awaiting]
        since = min(awaiting.values(), default=None)
    subscriptions = {c[2] for c in customers}
    found: list[PeriodInvoice] = []
    frozen_lines: list[list] = []
    for customer_id, invoice in invoices_of(client, {c[1]: c[0] for c in customers}, since):
        if (invoice.get("billing_reason") != "subscription_cycle" or invoice["status"] == "void"
                or invoice.get("subscription") not in subscriptions):
            continue
        if invoice["id"] in known_final:  # final invoices do not change: read once
            continue
        lines = _metered_lines(client, invoice, meter_of)
        if not lines:
            continue
        period = lines[0][1]["period"]
        pi = PeriodInvoice(
            customer_id, invoice["id"], int(period["start"]), int(period["end"]), invoice["status"],
            bool(invoice.get("auto_advance")), invoice.get("automatically_finalizes_at"),
        )
        found.append(pi)
        if pi.finalized and (customer_id, pi.period_start) not in frozen:
            frozen_lines += [
                [customer_id, meter, pi.period_start, pi.period_end, invoice["id"], line_quantity(line), int(line["amount"])]
                for meter, line in lines
            ]
    _upsert(con, found)
    insert_rows(
        con, "INSERT OR IGNORE INTO ops.invoiced_lines",
        "(?, ?, to_timestamp(?::BIGINT), to_timestamp(?::BIGINT), ?, ?::DECIMAL(38, 12), ?::BIGINT, now())", frozen_lines,
    )
    return found


def _upsert(con: duckdb.DuckDBPyConnection, invoices: list[PeriodInvoice]) -> None:
    # one row per customer-period in a statement (ON CONFLICT may not touch a row twice); the last read wins
    invoices = list({(pi.customer_id, pi.period_start): pi for pi in invoices}.values())
    insert_rows(
        con,
        """INSERT INTO ops.period_invoices (customer_id, period_start, period_end, stripe_invoice_id, status,
               auto_advance, finalizes_at, finalized, synced_at)""",
        "(?, to_timestamp(?::BIGINT), to_timestamp(?::BIGINT), ?, ?, ?::BOOLEAN, to_timestamp(?::BIGINT), ?::BOOLEAN, now())",
        [[pi.customer_id, pi.period_start, pi.period_end, pi.stripe_invoice_id, pi.status, pi.auto_advance,
          pi.finalizes_at, pi.finalized] for pi in invoices],
        tail="""ON CONFLICT (customer_id, period_start) DO UPDATE SET period_end = excluded.period_end,
               stripe_invoice_id = excluded.stripe_invoice_id, status = excluded.status,
               auto_advance = excluded.auto_advance, finalizes_at = excluded.finalizes_at,
               finalized = excluded.finalized, synced_at = excluded.synced_at""",
    )

"""What Stripe did with each period: its subscription invoice's state, and what a final invoice billed.

`refresh_period_invoices` reads every subscription-cycle invoice of our customers into
`ops.period_invoices` (one row per customer × period, the period taken from its metered lines) and,
the first time an invoice is seen finalized, freezes its metered lines (quantity, amount) into
`ops.invoiced_lines`: the baseline of every later adjustment. Holds, releases and the upload
watermark (`uploaded_through_run`) set by period close are kept across refreshes.

Given Stripe's `now`, only customers that can have news are read (`customers_awaiting_invoices`):
- in full (every invoice created since their oldest open period ended), those with a period that
  has ended but whose invoice is not recorded yet (Stripe drafts it at the period end), or whose
  recorded draft is due to finalize by `now` (`automatically_finalizes_at`);
- through the account's lists of open, paid and uncollectible invoices, those whose recorded drafts
  are not due: such a draft can only have news by leaving draft early (finalized by hand), and those
  lists hold just the invoices that left draft, not the thousands of drafts of a grace period.
Between period ends that is nobody, so an hourly run makes no request here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import chain
from typing import Any

import duckdb
import stripe

from metering_dagster.billing.months import add_months, epoch, period_index
from metering_dagster.billing.problems import CustomerProblems
from metering_dagster.billing.reads import FEW_CUSTOMERS, MeterOfPrice, invoice_lines_of, invoices_of, line_quantity
from metering_dagster.billing.values import metadata_of
from metering_dagster.schema import ADJUSTMENT_KEY, ensure_period_tables

# An invoice leaves draft as one of the billed statuses (a void one was open first, and is skipped anyway).
from metering_dagster.vocabulary import billed_invoice_statuses, finalized_invoice_statuses
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
        return self.status in finalized_invoice_statuses()


def _metered_lines(client: stripe.StripeClient, invoice: Any, meter_of: MeterOfPrice) -> list[tuple[str, Any]]:
    out = []
    for line in invoice_lines_of(client, invoice):
        if ADJUSTMENT_KEY in metadata_of(line):
            continue
        meter = meter_of(line)
        if meter is not None and line.get("period") is not None:
            out.append((meter, line))
    return out


def _period_invoice(
    client: stripe.StripeClient, customer_id: str, invoice: dict, meter_of: MeterOfPrice
) -> tuple[PeriodInvoice | None, list[tuple[str, Any]]]:
    """The period invoice and its metered lines; None for an invoice without metered lines."""
    lines = _metered_lines(client, invoice, meter_of)
    if not lines:
        return None, lines
    period = lines[0][1]["period"]
    return PeriodInvoice(
        customer_id,
        invoice["id"],
        int(period["start"]),
        int(period["end"]),
        invoice["status"],
        bool(invoice.get("auto_advance")),
        invoice.get("automatically_finalizes_at"),
    ), lines


@dataclass(frozen=True)
class Awaiting:
    """Customers whose period invoice can still change, each with the earliest end of such a period."""

    read: dict[str, int]  # read in full: a new period's invoice to find, or a draft due to finalize
    watched: dict[str, int]  # only recorded drafts that are not due: news only if one left draft early


def customers_awaiting_invoices(con: duckdb.DuckDBPyConnection, now: datetime) -> Awaiting:
    """Who to read at Stripe's `now`, and how (module doc)."""
    recorded = {
        (c, ps)
        for c, ps in con.execute("SELECT customer_id, epoch(period_start)::BIGINT FROM ops.period_invoices").fetchall()
    }
    read: dict[str, int] = {}
    watched: dict[str, int] = {}
    for customer_id, period_end, not_due in con.execute(
        """SELECT customer_id, epoch(min(period_end))::BIGINT,
                  bool_and(status = 'draft' AND coalesce(finalizes_at > ?, true))
           FROM ops.period_invoices WHERE NOT finalized GROUP BY 1""",
        [now],
    ).fetchall():
        (watched if not_due else read)[customer_id] = period_end
    now = now.astimezone(UTC)
    for customer_id, anchor in con.execute(
        "SELECT customer_id, billing_anchor FROM ops.stripe_customers WHERE stripe_subscription_id IS NOT NULL"
    ).fetchall():
        anchor = anchor.astimezone(UTC)  # month arithmetic in UTC, as Stripe bills
        k = period_index(anchor, now)
        if k >= 1 and (customer_id, epoch(add_months(anchor, k - 1))) not in recorded:
            ended = epoch(add_months(anchor, k))
            read[customer_id] = min(read.get(customer_id, ended), watched.pop(customer_id, ended))
    return Awaiting(read, watched)


def refresh_period_invoices(
    client: stripe.StripeClient,
    con: duckdb.DuckDBPyConnection,
    now: datetime | None = None,
    problems: CustomerProblems | None = None,
) -> list[PeriodInvoice]:
    """Bring `ops.period_invoices` and `ops.invoiced_lines` up to what Stripe holds at `now` (module doc).

    Without `now`, every invoice of every customer is read. A customer whose invoices cannot be read is
    recorded in `problems` and keeps its earlier rows (read again next time, as it still awaits them).
    """
    problems = problems if problems is not None else CustomerProblems("period invoices")
    ensure_period_tables(con)
    meter_of = MeterOfPrice(client, con)
    frozen = {
        (c, int(ps.timestamp()))
        for c, ps in con.execute("SELECT DISTINCT customer_id, period_start FROM ops.invoiced_lines").fetchall()
    }
    known_final = {
        r[0] for r in con.execute("SELECT stripe_invoice_id FROM ops.period_invoices WHERE finalized").fetchall()
    }
    customers = con.execute(
        """SELECT customer_id, stripe_customer_id, stripe_subscription_id FROM ops.stripe_customers
           WHERE stripe_subscription_id IS NOT NULL ORDER BY 1"""
    ).fetchall()
    subscriptions = {c[2] for c in customers}

    def stripe_ids(ours) -> dict[str, str]:
        return {c[1]: c[0] for c in customers if c[0] in ours}

    if now is None:
        invoices = invoices_of(client, stripe_ids({c[0] for c in customers}), problems=problems)
    else:
        awaiting = customers_awaiting_invoices(con, now)
        read, watched = dict(awaiting.read), awaiting.watched
        if len(watched) < FEW_CUSTOMERS:  # a list per customer costs no more than the status lists
            read.update(watched)
            watched = {}
        lists = [invoices_of(client, stripe_ids(read), min(read.values(), default=None), problems=problems)]
        if watched:
            lists += [
                invoices_of(client, stripe_ids(watched), min(watched.values()), status=status, problems=problems)
                for status in billed_invoice_statuses()
            ]
        invoices = chain(*lists)
    found: list[PeriodInvoice] = []
    frozen_lines: list[list] = []
    for customer_id, invoice in invoices:
        with problems.guard(customer_id):
            if (
                invoice.get("billing_reason") != "subscription_cycle"
                or invoice["status"] == "void"
                or invoice.get("subscription") not in subscriptions
            ):
                continue
            if invoice["id"] in known_final:  # final invoices do not change: read once
                continue
            pi, lines = _period_invoice(client, customer_id, invoice, meter_of)
            if pi is None:
                continue
            found.append(pi)
            if pi.finalized and (customer_id, pi.period_start) not in frozen:
                frozen_lines += [
                    [
                        customer_id,
                        meter,
                        pi.period_start,
                        pi.period_end,
                        invoice["id"],
                        line_quantity(line),
                        int(line["amount"]),
                    ]
                    for meter, line in lines
                ]
    found = [pi for pi in found if pi.customer_id not in problems]
    frozen_lines = [row for row in frozen_lines if row[0] not in problems]
    _upsert(con, found)
    insert_rows(
        con,
        "INSERT OR IGNORE INTO ops.invoiced_lines",
        "(?, ?, to_timestamp(?::BIGINT), to_timestamp(?::BIGINT), ?, ?::DECIMAL(38, 12), ?::BIGINT, now())",
        frozen_lines,
    )
    return found


def record_draft_update(con: duckdb.DuckDBPyConnection, invoice: Any) -> None:
    """A draft we changed ourselves (period close's hold or release), as Stripe answered the update.

    A draft that is not due is not read again (module doc), so what we change on it is recorded here.
    """
    con.execute(
        """UPDATE ops.period_invoices SET auto_advance = ?, finalizes_at = to_timestamp(?), synced_at = now()
           WHERE stripe_invoice_id = ? AND status = 'draft'""",
        [bool(invoice.auto_advance), invoice.automatically_finalizes_at, invoice.id],
    )


def _upsert(con: duckdb.DuckDBPyConnection, invoices: list[PeriodInvoice]) -> None:
    # one row per customer-period in a statement (ON CONFLICT may not touch a row twice); the last read wins
    invoices = list({(pi.customer_id, pi.period_start): pi for pi in invoices}.values())
    insert_rows(
        con,
        """INSERT INTO ops.period_invoices (customer_id, period_start, period_end, stripe_invoice_id, status,
               auto_advance, finalizes_at, finalized, synced_at)""",
        "(?, to_timestamp(?::BIGINT), to_timestamp(?::BIGINT), ?, ?, ?::BOOLEAN, to_timestamp(?::BIGINT), ?::BOOLEAN, now())",
        [
            [
                pi.customer_id,
                pi.period_start,
                pi.period_end,
                pi.stripe_invoice_id,
                pi.status,
                pi.auto_advance,
                pi.finalizes_at,
                pi.finalized,
            ]
            for pi in invoices
        ],
        tail="""ON CONFLICT (customer_id, period_start) DO UPDATE SET period_end = excluded.period_end,
               stripe_invoice_id = excluded.stripe_invoice_id, status = excluded.status,
               auto_advance = excluded.auto_advance, finalizes_at = excluded.finalizes_at,
               finalized = excluded.finalized, synced_at = excluded.synced_at""",
    )

"""Copy Stripe's view of our usage and invoices into `stripe_view.*` for reconciliation.

- `stripe_view.invoice_lines`: every line of every invoice of our customers (draft, open, paid,
  void...), plus the preview of each subscription's upcoming invoice (status `preview`). A line
  is mapped back to our meter through its price (`ops.stripe_prices`, else the price's
  `recurring.meter` in `ops.stripe_meters`); an invoice item that is not a metered price keeps
  the meter from its `metadata.metering_meter`, or NULL.
- `stripe_view.usage_summaries`: Stripe's meter event summary over [period_start, period_end) for
  the customer × meter × periods of `marts.fct_usage_by_period` that no invoice or preview line
  gives (a line's quantity is the meter's total for its period), and for negative totals, which a
  line bills as 0.
- Lines of our late-usage adjustments (invoice items carrying `metadata.metering_adjustment_id`) are
  left out: `invoice_lines` holds each period's own lines; period close snapshots the adjustments
  into `stripe_view.invoice_adjustments` (`periods/adjustments.py`).

Cost follows change: a customer is read again (one invoice list, one preview, summaries only where
no line covers) when it has no snapshot yet, when we sent it meter events or adjustments since its
last one, when its invoices changed state, when Stripe's clock crossed one of its period ends,
when its last reconciliation was not a match, or when its snapshot is older than
`METERING_STRIPE_VERIFY_HOURS` (default 24). Everyone else keeps their rows. `full=True` (the
post-finalization reconciliation job) reads everyone. Reads run on `METERING_STRIPE_CONCURRENCY`
threads (default 4): against Stripe each one is a network round trip.

The rows of the customers read are replaced in one transaction. Quantities are exact decimals:
see `values.decimal_from_json_number` for why `Decimal(repr(aggregated_value))` is exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import duckdb
import stripe

from metering_dagster.billing.clock import current_clock_time
from metering_dagster.billing.ledger import USAGE_TABLE
from metering_dagster.billing.months import add_months, epoch, period_index
from metering_dagster.billing.objects import stripe_objects_exist, sync_stripe_objects
from metering_dagster.billing.problems import CustomerProblems, recorded_problems
from metering_dagster.billing.reads import MeterOfPrice, in_parallel, invoice_lines_of, invoices_of, line_quantity, pick
from metering_dagster.billing.values import decimal_from_json_number, metadata_of
from metering_dagster.contract.model import Contract
from metering_dagster.schema import ADJUSTMENT_KEY, ensure_billing_tables, ensure_period_tables
from metering_dagster.settings import stripe_concurrency, stripe_verify_hours
from metering_dagster.vocabulary import billed_invoice_statuses, finalized_invoice_statuses
from metering_dagster.warehouse import insert_rows


@dataclass
class SnapshotResult:
    usage_summaries: int = 0
    invoices: int = 0
    previews: int = 0
    invoice_lines: int = 0
    unmapped_lines: int = 0  # lines whose price is none of our meters' prices
    customers_read: int = 0  # read from Stripe in this snapshot
    customers_carried: int = 0  # nothing changed for them since their last snapshot: rows kept
    snapshot_at: datetime | None = None
    problems: list[str] = field(default_factory=list)  # customers whose reads failed: their earlier rows are kept

    def metadata(self) -> dict[str, Any]:
        return {
            "usage_summaries": self.usage_summaries,
            "invoices": self.invoices,
            "previews": self.previews,
            "invoice_lines": self.invoice_lines,
            "unmapped_lines": self.unmapped_lines,
            "customers_read": self.customers_read,
            "customers_carried": self.customers_carried,
            "snapshot_at": self.snapshot_at.isoformat() if self.snapshot_at else "-",
            "customers_unreadable": len(self.problems),
        }

    def summary(self) -> str:
        return (
            f"Stripe snapshot: {self.usage_summaries} usage summaries, {self.invoice_lines} invoice lines "
            f"from {self.invoices} invoices and {self.previews} previews of {self.customers_read} customers"
            f" ({self.customers_carried} unchanged since their last snapshot)"
            + "".join(f"\n  could not read {line}" for line in self.problems)
        )


def _minute_floor(ts: int) -> int:
    return ts - ts % 60


def _summary_total(client: stripe.StripeClient, key: tuple) -> tuple:
    customer_id, meter, ps, pe, stripe_customer, stripe_meter = key
    # Stripe wants minute-aligned bounds; billing anchors are whole minutes in practice
    params = {"customer": stripe_customer, "start_time": _minute_floor(ps), "end_time": _minute_floor(pe)}
    total = Decimal(0)
    for summary in client.v1.billing.meters.event_summaries.list(stripe_meter, params).auto_paging_iter():
        total += decimal_from_json_number(summary.aggregated_value)
    return customer_id, meter, ps, pe, total


def _summaries(
    client: stripe.StripeClient,
    con: duckdb.DuckDBPyConnection,
    customers: set[str],
    covered: set[tuple[str, str, int]],
    workers: int,
    problems: CustomerProblems,
) -> list[tuple]:
    """Meter event summaries of the customers' periods that no invoice or preview line already gives."""
    keys = con.execute(
        f"""SELECT u.customer_id, u.meter, epoch(u.period_start)::BIGINT, epoch(u.period_end)::BIGINT,
                   c.stripe_customer_id, m.stripe_meter_id, u.quantity < 0
            FROM {USAGE_TABLE} u
            JOIN ops.stripe_customers c USING (customer_id)
            JOIN ops.stripe_meters m USING (meter)
            ORDER BY 1, 2, 3"""
    ).fetchall()
    # A negative total is billed as 0 on an invoice line: only the summary shows it exactly.
    wanted = [k[:6] for k in keys if k[0] in customers and (k[6] or (k[0], k[1], k[2]) not in covered)]

    def read(key: tuple) -> tuple | None:
        with problems.guard(key[0]):
            return _summary_total(client, key)
        return None

    return [row for row in in_parallel(read, wanted, workers) if row is not None]


def _line_rows(customer_id: str, invoice: Any, status: str, lines, meter_of: MeterOfPrice) -> list[tuple]:
    rows = []
    for line in lines:
        if ADJUSTMENT_KEY in metadata_of(line):  # a late-usage adjustment: stripe_view.invoice_adjustments
            continue
        start, end = pick(line, "period", "start"), pick(line, "period", "end")
        rows.append(
            (
                customer_id,
                meter_of(line),
                None if start is None else int(start),
                None if end is None else int(end),
                pick(invoice, "id"),
                status,
                line_quantity(line),
                int(pick(line, "amount")),
                pick(line, "currency"),
            )
        )
    return rows


def _preview_rows(client: stripe.StripeClient, meter_of: MeterOfPrice, customer: tuple[str, str]) -> list[tuple]:
    """Every line of the subscription's upcoming invoice, however many pages they take."""
    customer_id, subscription = customer
    try:
        preview = client.v1.invoices.create_preview({"subscription": subscription})
    except stripe.InvalidRequestError as err:  # e.g. a canceled subscription has no upcoming invoice
        if getattr(err, "code", None) != "invoice_upcoming_none":
            raise
        return []
    return _line_rows(customer_id, preview, "preview", invoice_lines_of(client, preview), meter_of)


def customers_changed_since_snapshot(con: duckdb.DuckDBPyConnection, invoice_syncs: bool = True) -> set[str]:
    """Customers with something new since their last snapshot: meter events or adjustments sent (with
    `invoice_syncs`, their period invoices synced), a recorded read problem."""
    since_snapshot = [
        "SELECT l.customer_id FROM ops.stripe_ledger l JOIN ops.stripe_snapshot_state s USING (customer_id)"
        " WHERE l.sent_at >= s.snapshot_at",
        "SELECT a.customer_id FROM ops.stripe_adjustments a JOIN ops.stripe_snapshot_state s USING (customer_id)"
        " WHERE coalesce(a.sent_at, a.created_at) >= s.snapshot_at",
    ]
    if invoice_syncs:
        since_snapshot.append(
            "SELECT p.customer_id FROM ops.period_invoices p JOIN ops.stripe_snapshot_state s USING (customer_id)"
            " WHERE p.synced_at >= s.snapshot_at"
        )
    changed = {r[0] for r in con.execute(" UNION ".join(since_snapshot)).fetchall()}
    return changed | {r[0] for r in recorded_problems(con)}


def customers_not_matching(con: duckdb.DuckDBPyConnection) -> set[str] | None:
    """Customers with a line not matching in the last reconciliation; None before the first one."""
    try:
        rows = con.execute("SELECT DISTINCT customer_id FROM marts.rpt_reconciliation WHERE status <> 'match'")
    except duckdb.CatalogException:
        return None
    return {r[0] for r in rows.fetchall()}


def customers_to_read(con: duckdb.DuckDBPyConnection, stripe_now: datetime) -> set[str]:
    """Customers whose Stripe view may have changed since their last snapshot (module doc)."""
    hours = stripe_verify_hours()
    rows = con.execute(
        """SELECT c.customer_id, c.billing_anchor, s.snapshot_at, s.stripe_now
           FROM ops.stripe_customers c LEFT JOIN ops.stripe_snapshot_state s USING (customer_id)"""
    ).fetchall()
    changed = customers_changed_since_snapshot(con) | (customers_not_matching(con) or set())
    now = stripe_now.astimezone(UTC)
    stale_before = datetime.now(UTC) - timedelta(hours=hours)
    out = set()
    for customer_id, anchor, snapshot_at, seen_now in rows:
        anchor = anchor.astimezone(UTC)
        if (
            snapshot_at is None
            or customer_id in changed
            or snapshot_at < stale_before
            or period_index(anchor, seen_now.astimezone(UTC)) != period_index(anchor, now)
        ):
            out.add(customer_id)
    return out


def _invoices_since(con: duckdb.DuckDBPyConnection, customers: list[tuple], stripe_now: datetime) -> int | None:
    """The earliest creation time of an invoice the customers may have that is not yet final.

    Stripe creates a period's invoice at its end: the start of the previous period, or of the oldest
    period whose invoice we have not seen final, bounds every invoice that can still change.
    """
    if not customers:
        return None
    now = stripe_now.astimezone(UTC)
    since = []
    for _, _, _, anchor in customers:
        anchor = anchor.astimezone(UTC)
        since.append(epoch(add_months(anchor, period_index(anchor, now) - 1)))
    open_periods = con.execute(
        "SELECT min(epoch(period_start))::BIGINT FROM ops.period_invoices WHERE NOT finalized"
    ).fetchone()[0]
    if open_periods is not None:
        since.append(open_periods)
    return min(since)


def _customers_with_current_usage(con: duckdb.DuckDBPyConnection, stripe_now: datetime) -> set[str]:
    return {
        r[0]
        for r in con.execute(
            f"SELECT DISTINCT customer_id FROM {USAGE_TABLE} WHERE period_start <= ? AND ? < period_end",
            [stripe_now, stripe_now],
        ).fetchall()
    }


def snapshot_stripe_view(
    client: stripe.StripeClient, con: duckdb.DuckDBPyConnection, contract: Contract, *, full: bool = False
) -> SnapshotResult:
    """Refresh `stripe_view.usage_summaries` and `stripe_view.invoice_lines` from Stripe (module doc)."""
    ensure_billing_tables(con)
    ensure_period_tables(con)
    if not stripe_objects_exist(con, contract):
        sync_stripe_objects(client, contract, con)
    workers = stripe_concurrency()
    started = datetime.now(UTC)  # what was sent before this instant is in what we read
    result = SnapshotResult(snapshot_at=started.replace(microsecond=0))
    stripe_now = current_clock_time(client, con, contract)
    customers = con.execute(
        """SELECT customer_id, stripe_customer_id, stripe_subscription_id, billing_anchor
           FROM ops.stripe_customers ORDER BY 1"""
    ).fetchall()
    wanted = {c[0] for c in customers} if full else customers_to_read(con, stripe_now)
    meter_of = MeterOfPrice(client, con)
    since = None if full else _invoices_since(con, [c for c in customers if c[0] in wanted], stripe_now)
    fetched: set[str] = set()
    lines: list[tuple] = []
    problems = CustomerProblems("stripe snapshot")
    for customer_id, invoice in invoices_of(
        client, {c[1]: c[0] for c in customers if c[0] in wanted}, since, problems=problems
    ):
        with problems.guard(customer_id):
            lines += _line_rows(customer_id, invoice, invoice["status"], invoice_lines_of(client, invoice), meter_of)
            result.invoices += 1
            fetched.add(invoice["id"])
    # The upcoming invoice only matters where there is usage in the period under way.
    current = _customers_with_current_usage(con, stripe_now)
    previewed = [(c[0], c[2]) for c in customers if c[0] in wanted and c[0] in current and c[2]]

    def preview(customer: tuple[str, str]) -> list[tuple] | None:
        with problems.guard(customer[0]):
            return _preview_rows(client, meter_of, customer)
        return None

    for rows in in_parallel(preview, previewed, workers):
        if rows is not None:
            result.previews += 1
            lines += rows
    covered = {(r[0], r[1], r[2]) for r in lines if r[1] is not None and r[2] is not None}
    if since is not None:  # lines of final invoices kept from earlier snapshots cover their periods too
        covered |= {
            (c, m, int(ps))
            for c, m, ps, invoice in con.execute(
                """SELECT customer_id, meter, epoch(period_start)::BIGINT, stripe_invoice_id FROM stripe_view.invoice_lines
               WHERE list_contains(?::VARCHAR[], invoice_status) AND meter IS NOT NULL
                 AND period_start IS NOT NULL""",
                [list(billed_invoice_statuses())],
            ).fetchall()
            if invoice not in fetched
        }
    summaries = _summaries(client, con, wanted, covered, workers, problems)
    # A customer whose reads failed keeps its earlier rows and is read again next run; the others go on.
    wanted -= set(problems.by_customer)
    lines = [row for row in lines if row[0] in wanted]
    summaries = [row for row in summaries if row[0] in wanted]
    result.unmapped_lines = sum(1 for r in lines if r[1] is None)
    at = int(result.snapshot_at.timestamp())
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute("CREATE TEMP TABLE IF NOT EXISTS snapshot_customers (customer_id VARCHAR)")
        con.execute("DELETE FROM snapshot_customers")
        if wanted:
            insert_rows(con, "INSERT INTO snapshot_customers", "(?)", [[c] for c in sorted(wanted)])
        con.execute(
            "DELETE FROM stripe_view.usage_summaries WHERE customer_id IN (SELECT customer_id FROM snapshot_customers)"
        )
        # Final invoices created before `since` were not read again: their lines are kept (final amounts do
        # not change); everything else of the customers read is replaced.
        con.execute("CREATE TEMP TABLE IF NOT EXISTS snapshot_invoices (stripe_invoice_id VARCHAR)")
        con.execute("DELETE FROM snapshot_invoices")
        if fetched:
            insert_rows(con, "INSERT INTO snapshot_invoices", "(?)", [[i] for i in sorted(fetched)])
        con.execute(
            """DELETE FROM stripe_view.invoice_lines
               WHERE customer_id IN (SELECT customer_id FROM snapshot_customers)
                 AND (? OR NOT list_contains(?::VARCHAR[], invoice_status)
                      OR stripe_invoice_id IN (SELECT stripe_invoice_id FROM snapshot_invoices))""",
            [since is None, list(finalized_invoice_statuses())],
        )
        if summaries:
            insert_rows(
                con,
                """INSERT INTO stripe_view.usage_summaries
                       (customer_id, meter, period_start, period_end, stripe_quantity, snapshot_at)""",
                "(?, ?, to_timestamp(?), to_timestamp(?), ?::DECIMAL(38, 12), to_timestamp(?))",
                [[*row, at] for row in summaries],
            )
        if lines:
            insert_rows(
                con,
                """INSERT INTO stripe_view.invoice_lines
                       (customer_id, meter, period_start, period_end, stripe_invoice_id, invoice_status,
                        quantity, amount_cents, currency, snapshot_at)""",
                "(?, ?::VARCHAR, to_timestamp(?::BIGINT), to_timestamp(?::BIGINT), ?::VARCHAR, ?, ?::DECIMAL(38, 12),"
                " ?::BIGINT, ?, to_timestamp(?))",
                [[*row, at] for row in lines],
            )
        con.execute(
            """INSERT OR REPLACE INTO ops.stripe_snapshot_state
               SELECT customer_id, ?, ? FROM snapshot_customers""",
            [started, stripe_now],
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    problems.record(con)
    result.problems = problems.lines()
    result.customers_read = len(wanted)
    result.customers_carried = len(customers) - len(wanted)
    result.usage_summaries = len(summaries)
    result.invoice_lines = len(lines)
    return result

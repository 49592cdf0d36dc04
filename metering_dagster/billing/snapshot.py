"""Copy Stripe's view of our usage and invoices into `stripe_view.*` for reconciliation.

- `stripe_view.usage_summaries`: for every customer × meter × period of
  `marts.fct_usage_by_period`, Stripe's meter event summary over [period_start, period_end).
- `stripe_view.invoice_lines`: every line of every invoice of our customers (draft, open, paid,
  void...), plus the preview of each subscription's upcoming invoice (status `preview`). A line
  is mapped back to our meter through its price (`ops.stripe_prices`, else the price's
  `recurring.meter` in `ops.stripe_meters`); an invoice item that is not a metered price keeps
  the meter from its `metadata.metering_meter`, or NULL.
- Lines of our late-usage adjustments (invoice items carrying `metadata.metering_adjustment_id`) are
  left out: `invoice_lines` holds each period's own lines; period close snapshots the adjustments
  into `stripe_view.invoice_adjustments` (`periods/adjustments.py`).

Each snapshot replaces the previous one in one transaction. Quantities are exact decimals:
see `values.decimal_from_json_number` for why `Decimal(repr(aggregated_value))` is exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import duckdb
import stripe

from metering_dagster.billing.ledger import USAGE_TABLE
from metering_dagster.billing.objects import stripe_objects_exist, sync_stripe_objects
from metering_dagster.billing.tables import ensure_billing_tables
from metering_dagster.billing.values import decimal_from_json_number, metadata_of
from metering_dagster.contract.model import Contract
from metering_dagster.periods.tables import ADJUSTMENT_KEY


@dataclass
class SnapshotResult:
    usage_summaries: int = 0
    invoices: int = 0
    previews: int = 0
    invoice_lines: int = 0
    unmapped_lines: int = 0  # lines whose price is none of our meters' prices
    snapshot_at: datetime | None = None

    def metadata(self) -> dict[str, Any]:
        return {
            "usage_summaries": self.usage_summaries,
            "invoices": self.invoices,
            "previews": self.previews,
            "invoice_lines": self.invoice_lines,
            "unmapped_lines": self.unmapped_lines,
            "snapshot_at": self.snapshot_at.isoformat() if self.snapshot_at else "-",
        }

    def summary(self) -> str:
        return (
            f"Stripe snapshot: {self.usage_summaries} usage summaries, {self.invoice_lines} invoice lines "
            f"from {self.invoices} invoices and {self.previews} previews"
        )


def _minute_floor(ts: int) -> int:
    return ts - ts % 60


def _summaries(client: stripe.StripeClient, con: duckdb.DuckDBPyConnection) -> list[tuple]:
    keys = con.execute(
        f"""SELECT u.customer_id, u.meter, epoch(u.period_start)::BIGINT, epoch(u.period_end)::BIGINT,
                   c.stripe_customer_id, m.stripe_meter_id
            FROM {USAGE_TABLE} u
            JOIN ops.stripe_customers c USING (customer_id)
            JOIN ops.stripe_meters m USING (meter)
            ORDER BY 1, 2, 3"""
    ).fetchall()
    out = []
    for customer_id, meter, ps, pe, stripe_customer, stripe_meter in keys:
        # Stripe wants minute-aligned bounds; billing anchors are whole minutes in practice
        params = {"customer": stripe_customer, "start_time": _minute_floor(ps), "end_time": _minute_floor(pe)}
        total: Decimal | None = None
        for summary in client.v1.billing.meters.event_summaries.list(stripe_meter, params).auto_paging_iter():
            value = decimal_from_json_number(summary.aggregated_value)
            total = value if total is None else total + value
        out.append((customer_id, meter, ps, pe, total if total is not None else Decimal(0)))
    return out


def _line_price_id(line: Any) -> str | None:
    pricing = getattr(line, "pricing", None)
    details = getattr(pricing, "price_details", None) if pricing is not None else None
    price = getattr(details, "price", None) if details is not None else None
    if price is None:
        price = getattr(line, "price", None)
    if price is None:
        return None
    return price if isinstance(price, str) else price.id


def line_quantity(line: Any) -> Decimal | None:
    q = getattr(line, "quantity_decimal", None)
    if q is None:
        q = getattr(line, "quantity", None)
    return None if q is None else decimal_from_json_number(q)


class MeterOfPrice:
    def __init__(self, client: stripe.StripeClient, con: duckdb.DuckDBPyConnection):
        self.client = client
        self.by_price = dict(con.execute("SELECT stripe_price_id, meter FROM ops.stripe_prices").fetchall())
        self.by_meter_id = dict(con.execute("SELECT stripe_meter_id, meter FROM ops.stripe_meters").fetchall())

    def __call__(self, line: Any) -> str | None:
        price_id = _line_price_id(line)
        if price_id is not None and price_id not in self.by_price:
            try:
                price = self.client.v1.prices.retrieve(price_id)
                meter_id = price.recurring.meter if price.recurring is not None else None
            except stripe.InvalidRequestError:
                meter_id = None
            self.by_price[price_id] = self.by_meter_id.get(meter_id)
        if price_id is not None and self.by_price.get(price_id):
            return self.by_price[price_id]
        return metadata_of(line).get("metering_meter")


def _line_rows(customer_id: str, invoice: Any, status: str, lines, meter_of: MeterOfPrice, result) -> list[tuple]:
    rows = []
    for line in lines:
        if ADJUSTMENT_KEY in metadata_of(line):  # a late-usage adjustment: stripe_view.invoice_adjustments
            continue
        meter = meter_of(line)
        if meter is None:
            result.unmapped_lines += 1
        period = getattr(line, "period", None)
        rows.append(
            (
                customer_id,
                meter,
                int(period.start) if period is not None else None,
                int(period.end) if period is not None else None,
                getattr(invoice, "id", None),
                status,
                line_quantity(line),
                int(line.amount),
                line.currency,
            )
        )
    return rows


def _invoice_lines(client: stripe.StripeClient, con: duckdb.DuckDBPyConnection, result: SnapshotResult) -> list[tuple]:
    meter_of = MeterOfPrice(client, con)
    rows: list[tuple] = []
    customers = con.execute(
        "SELECT customer_id, stripe_customer_id, stripe_subscription_id FROM ops.stripe_customers ORDER BY 1"
    ).fetchall()
    for customer_id, stripe_customer, subscription in customers:
        for invoice in client.v1.invoices.list({"customer": stripe_customer, "limit": 100}).auto_paging_iter():
            result.invoices += 1
            lines = client.v1.invoices.line_items.list(invoice.id, {"limit": 100}).auto_paging_iter()
            rows += _line_rows(customer_id, invoice, invoice.status, lines, meter_of, result)
        if subscription:
            try:
                preview = client.v1.invoices.create_preview({"subscription": subscription})
            except stripe.InvalidRequestError as err:  # e.g. a canceled subscription has no upcoming invoice
                if getattr(err, "code", None) != "invoice_upcoming_none":
                    raise
                continue
            result.previews += 1
            rows += _line_rows(customer_id, preview, "preview", preview.lines.auto_paging_iter(), meter_of, result)
    return rows


def snapshot_stripe_view(client: stripe.StripeClient, con: duckdb.DuckDBPyConnection, contract: Contract) -> SnapshotResult:
    """Replace `stripe_view.usage_summaries` and `stripe_view.invoice_lines` with what Stripe holds now."""
    ensure_billing_tables(con)
    if not stripe_objects_exist(con, contract):
        sync_stripe_objects(client, contract, con)
    result = SnapshotResult(snapshot_at=datetime.now(timezone.utc).replace(microsecond=0))
    summaries = _summaries(client, con)
    lines = _invoice_lines(client, con, result)
    at = int(result.snapshot_at.timestamp())
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute("DELETE FROM stripe_view.usage_summaries")
        con.execute("DELETE FROM stripe_view.invoice_lines")
        if summaries:
            con.executemany(
                """INSERT INTO stripe_view.usage_summaries
                       (customer_id, meter, period_start, period_end, stripe_quantity, snapshot_at)
                   VALUES (?, ?, to_timestamp(?), to_timestamp(?), ?, to_timestamp(?))""",
                [[*row, at] for row in summaries],
            )
        if lines:
            con.executemany(
                """INSERT INTO stripe_view.invoice_lines
                       (customer_id, meter, period_start, period_end, stripe_invoice_id, invoice_status,
                        quantity, amount_cents, currency, snapshot_at)
                   VALUES (?, ?, to_timestamp(?), to_timestamp(?), ?, ?, ?, ?, ?, to_timestamp(?))""",
                [[*row, at] for row in lines],
            )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    result.usage_summaries = len(summaries)
    result.invoice_lines = len(lines)
    return result

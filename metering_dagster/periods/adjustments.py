"""Late usage for a finalized period: an adjustment on the customer's next invoice.

Once Stripe has finalized a period's invoice, nothing changes it. Usage that reaches us later (or
that Stripe's meters could not take, being older than 35 days) is billed as one Stripe invoice item
per customer × meter × period × change, attached to the subscription's next invoice:

    amount = price(quantity now) − price(quantity billed so far)

where "billed so far" is the finalized invoice line (`ops.invoiced_lines`, Stripe's own quantity and
amount at that period's price) plus every earlier adjustment. Positive or negative; a change that
does not move the price (e.g. a quantity still below zero) is recorded as `no_charge`. The outbox
`ops.stripe_adjustments` is written before anything is sent, with a deterministic identifier that is
the Stripe idempotency key and the item's `metadata.metering_adjustment_id`, so a re-run finds
what it sent and never bills a difference twice.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Collection
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import stripe

from metering_dagster.billing.months import from_epoch
from metering_dagster.billing.problems import CustomerProblems
from metering_dagster.billing.values import decimal_str, metadata_of
from metering_dagster.contract.model import Contract
from metering_dagster.display import money
from metering_dagster.schema import ADJUSTMENT_KEY, ensure_period_tables
from metering_dagster.warehouse import insert_rows

METADATA_IDS_LIMIT = 500  # Stripe metadata values hold at most 500 characters


def adjustment_identifier(environment: str, customer_id: str, meter: str, period_start: int, seq: int) -> str:
    key = f"{environment}|{customer_id}|{meter}|{period_start}|adjustment|{seq}"
    return "adj_" + hashlib.sha256(key.encode()).hexdigest()[:60]


@dataclass(frozen=True)
class Adjustment:
    identifier: str
    customer_id: str
    meter: str
    period_start: int
    period_end: int
    seq: int
    quantity_before: Decimal
    quantity_after: Decimal
    amount_before_cents: int
    amount_after_cents: int
    through_landing_run: int | None
    late_events: tuple[tuple, ...]  # (event_id, event_ts, value, source_file, line_number, landing_run_id)

    @property
    def amount_cents(self) -> int:
        return self.amount_after_cents - self.amount_before_cents


@dataclass
class AdjustmentResult:
    planned: list[Adjustment] = field(default_factory=list)
    sent: int = 0
    already_in_stripe: int = 0
    no_charge: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    currency: str = "usd"  # the contract's: how the total is shown

    def summary(self) -> str:
        total = sum(a.amount_cents for a in self.planned)
        text = (
            f"late-usage adjustments: {len(self.planned)} new ({money(total, self.currency, signed=True)}), "
            f"{self.sent} invoice items created,"
            f" {self.already_in_stripe} found already in Stripe, {self.no_charge} without a price change"
        )
        if self.failed:
            text += f"; {self.failed} failed and stay pending: {self.errors[0]}"
        return text


def _baseline_rows(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    return con.execute(
        """
        WITH adj AS (
            SELECT customer_id, meter, period_start, max(seq) AS seq, arg_max(quantity_after, seq) AS quantity_after,
                   sum(amount_cents) AS amount_cents, max(through_landing_run) AS through_run
            FROM ops.stripe_adjustments GROUP BY ALL
        )
        SELECT il.customer_id, il.meter, epoch(il.period_start)::BIGINT, epoch(il.period_end)::BIGINT,
               coalesce(adj.quantity_after, il.quantity), il.amount_cents + coalesce(adj.amount_cents, 0),
               CAST(e.quantity AS DECIMAL(38, 12)), e.amount_cents, coalesce(adj.seq, 0),
               coalesce(adj.through_run, pi.uploaded_through_run, 0)
        FROM ops.invoiced_lines il
        JOIN ops.period_invoices pi USING (customer_id, period_start)
        JOIN marts.fct_invoice_lines_expected e
          ON e.customer_id = il.customer_id AND e.meter = il.meter AND e.period_start = il.period_start
        LEFT JOIN adj ON adj.customer_id = il.customer_id AND adj.meter = il.meter AND adj.period_start = il.period_start
        WHERE pi.finalized
        ORDER BY 1, 2, 3
        """
    ).fetchall()


def _late_events(con, customer: str, meter: str, period_start: int, after_run: int) -> tuple[tuple, ...]:
    return tuple(
        con.execute(
            """SELECT event_id, event_ts, value, source_file, line_number, landing_run_id
               FROM intermediate.int_usage_events_metered
               WHERE customer_id = ? AND meter = ? AND period_start = to_timestamp(?) AND landing_run_id > ?
               ORDER BY landing_run_id, source_file, line_number""",
            [customer, meter, period_start, after_run],
        ).fetchall()
    )


def _floor0(q: Decimal) -> Decimal:
    return max(Decimal(q), Decimal(0))


def plan_adjustments(con: duckdb.DuckDBPyConnection, contract: Contract, held: Collection[str]) -> list[Adjustment]:
    """The adjustments that would bring every finalized period to what the marts say (nothing written).

    A customer held by the quality gate gets none while it is held, and a line our shadow invoice cannot price
    (`amount_problem`) none either: what Stripe would be told is not known.
    """
    ensure_period_tables(con)
    out = []
    for customer, meter, ps, pe, billed_q, billed_amount, local_q, local_amount, seq, through in _baseline_rows(con):
        if customer in held or local_amount is None:
            continue
        if _floor0(billed_q) == _floor0(local_q) and billed_amount == local_amount:
            continue
        late = _late_events(con, customer, meter, ps, through)
        runs = [e[5] for e in late]
        out.append(
            Adjustment(
                identifier=adjustment_identifier(contract.environment, customer, meter, ps, seq + 1),
                customer_id=customer,
                meter=meter,
                period_start=ps,
                period_end=pe,
                seq=seq + 1,
                quantity_before=_floor0(billed_q),
                quantity_after=Decimal(local_q),
                amount_before_cents=int(billed_amount),
                amount_after_cents=int(local_amount),
                through_landing_run=max(runs) if runs else through,
                late_events=late,
            )
        )
    return out


def _write_csv(path: Path, events: tuple[tuple, ...]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["event_id", "event_ts", "value", "source_file", "line_number", "landing_run_id"])
        for event_id, ts, value, source_file, line, run in events:
            writer.writerow(
                [
                    event_id,
                    ts.isoformat() if ts else "",
                    decimal_str(value) if value is not None else "",
                    source_file,
                    line,
                    run,
                ]
            )


def write_adjustments(
    con: duckdb.DuckDBPyConnection, contract: Contract, csv_dir: Path, held: Collection[str]
) -> list[Adjustment]:
    """Plan and record the adjustments (status `pending`, or `no_charge` when the price does not move)."""
    planned = plan_adjustments(con, contract, held)
    for a in planned:
        path = csv_dir / f"{a.identifier}.csv"
        _write_csv(path, a.late_events)
        ids = ",".join(e[0] for e in a.late_events)
        con.execute(
            """INSERT INTO ops.stripe_adjustments (identifier, customer_id, meter, period_start, period_end, seq,
                   quantity_before, quantity_after, amount_before_cents, amount_after_cents, amount_cents,
                   through_landing_run, late_event_count, late_event_ids, events_csv, status, created_at)
               VALUES (?, ?, ?, to_timestamp(?), to_timestamp(?), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now())""",
            [
                a.identifier,
                a.customer_id,
                a.meter,
                a.period_start,
                a.period_end,
                a.seq,
                a.quantity_before,
                a.quantity_after,
                a.amount_before_cents,
                a.amount_after_cents,
                a.amount_cents,
                a.through_landing_run,
                len(a.late_events),
                ids,
                str(path),
                "pending" if a.amount_cents else "no_charge",
            ],
        )
    return planned


def _item_params(row: tuple, contract: Contract, subscription: str | None, stripe_customer: str) -> dict[str, Any]:
    (identifier, customer, meter, ps, pe, q_before, q_after, amount, n_events, ids, csv_path, seq) = row
    ps_text, pe_text = from_epoch(ps).strftime("%Y-%m-%d"), from_epoch(pe).strftime("%Y-%m-%d")
    ids_text = ids or ""
    if len(ids_text) > METADATA_IDS_LIMIT:
        ids_text = ids_text[: METADATA_IDS_LIMIT - 1] + "…"
    params: dict[str, Any] = {
        "customer": stripe_customer,
        "amount": int(amount),
        "currency": contract.currency.lower(),
        "description": (
            f"Late usage adjustment, {meter}, period {ps_text} to {pe_text}: quantity {decimal_str(q_before)} "
            f"invoiced -> {decimal_str(q_after)} ({n_events} late events, ref {identifier})"
        ),
        "period": {"start": ps, "end": pe},
        "metadata": {
            ADJUSTMENT_KEY: identifier,
            "metering_customer_id": customer,
            "metering_meter": meter,
            "metering_period_start": str(ps),
            "metering_period_end": str(pe),
            "metering_period": f"{ps_text}/{pe_text}",
            "metering_quantity_before": decimal_str(q_before),
            "metering_quantity_after": decimal_str(q_after),
            "metering_late_event_count": str(n_events),
            "metering_late_event_ids": ids_text,
            "metering_events_csv": Path(csv_path).name if csv_path else "",
            "metering_adjustment_seq": str(seq),
        },
    }
    if subscription:
        params["subscription"] = subscription
    return params


def send_adjustments(
    client: stripe.StripeClient,
    con: duckdb.DuckDBPyConnection,
    contract: Contract,
    result: AdjustmentResult,
    problems: CustomerProblems,
) -> None:
    """Create the invoice item of every pending adjustment, unless Stripe already holds it."""
    rows = con.execute(
        """SELECT a.identifier, a.customer_id, a.meter, epoch(a.period_start)::BIGINT, epoch(a.period_end)::BIGINT,
                  a.quantity_before, a.quantity_after, a.amount_cents, a.late_event_count, a.late_event_ids,
                  a.events_csv, a.seq, c.stripe_customer_id, c.stripe_subscription_id
           FROM ops.stripe_adjustments a JOIN ops.stripe_customers c USING (customer_id)
           WHERE a.status = 'pending' ORDER BY a.customer_id, a.meter, a.period_start, a.seq"""
    ).fetchall()
    existing: dict[str, dict[str, str]] = {}
    for row in rows:
        identifier, stripe_customer, subscription = row[0], row[12], row[13]
        if stripe_customer not in existing:
            with problems.guard(row[1]):
                existing[stripe_customer] = {
                    metadata_of(ii).get(ADJUSTMENT_KEY): ii.id
                    for ii in client.v1.invoice_items.list(
                        {"customer": stripe_customer, "limit": 100}
                    ).auto_paging_iter()
                }
        if stripe_customer not in existing:  # its invoice items could not be read: stays pending
            continue
        item_id = existing[stripe_customer].get(identifier)
        try:
            if item_id is None:
                item = client.v1.invoice_items.create(
                    _item_params(row[:12], contract, subscription, stripe_customer), {"idempotency_key": identifier}
                )
                item_id = item.id
                result.sent += 1
            else:
                result.already_in_stripe += 1
        except stripe.StripeError as err:
            con.execute(
                "UPDATE ops.stripe_adjustments SET last_error = ? WHERE identifier = ?", [str(err)[:1000], identifier]
            )
            result.failed += 1
            result.errors.append(f"{row[1]}/{row[2]}: {err}")
            continue
        con.execute(
            """UPDATE ops.stripe_adjustments SET status = 'sent', stripe_invoice_item_id = ?, sent_at = now(),
                   last_error = NULL WHERE identifier = ?""",
            [item_id, identifier],
        )


def adjust_finalized_periods(
    client: stripe.StripeClient,
    con: duckdb.DuckDBPyConnection,
    contract: Contract,
    csv_dir: Path,
    problems: CustomerProblems,
    held: Collection[str],
) -> AdjustmentResult:
    result = AdjustmentResult(currency=contract.currency)
    result.planned = write_adjustments(con, contract, csv_dir, held)
    result.no_charge = sum(1 for a in result.planned if a.amount_cents == 0)
    send_adjustments(client, con, contract, result, problems)
    return result


def _adjustment_rows(client: stripe.StripeClient, customer_id: str, stripe_customer: str) -> list[list]:
    rows = []
    for item in client.v1.invoice_items.list({"customer": stripe_customer, "limit": 100}).auto_paging_iter():
        meta = metadata_of(item)
        if ADJUSTMENT_KEY not in meta:
            continue
        after = meta.get("metering_quantity_after")
        rows.append(
            [
                customer_id,
                meta.get("metering_meter"),
                int(meta["metering_period_start"]),
                meta[ADJUSTMENT_KEY],
                int(meta.get("metering_adjustment_seq") or 0),
                item.id,
                getattr(item, "invoice", None),
                int(item.amount),
                Decimal(after) if after else None,
            ]
        )
    return rows


def snapshot_adjustments(
    client: stripe.StripeClient, con: duckdb.DuckDBPyConnection, problems: CustomerProblems
) -> int:
    """Replace `stripe_view.invoice_adjustments` with our adjustment invoice items as Stripe holds them.

    Only customers we ever sent an adjustment to can have one: the others cost no request. A customer whose
    items cannot be read keeps its earlier rows.
    """
    rows = []
    customers = con.execute(
        """SELECT customer_id, stripe_customer_id FROM ops.stripe_customers
           WHERE customer_id IN (SELECT customer_id FROM ops.stripe_adjustments WHERE stripe_invoice_item_id IS NOT NULL)
           ORDER BY 1"""
    ).fetchall()
    unread = []
    for customer_id, stripe_customer in customers:
        with problems.guard(customer_id):
            rows += _adjustment_rows(client, customer_id, stripe_customer)
            continue
        unread.append(customer_id)
    rows = [r for r in rows if r[0] not in unread]
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute("DELETE FROM stripe_view.invoice_adjustments WHERE NOT list_contains(?, customer_id)", [unread])
        if rows:
            insert_rows(
                con,
                """INSERT INTO stripe_view.invoice_adjustments (customer_id, meter, period_start, adjustment_id, seq,
                       stripe_invoice_item_id, stripe_invoice_id, amount_cents, quantity_after, snapshot_at)""",
                "(?, ?, to_timestamp(?::BIGINT), ?, ?, ?, ?::VARCHAR, ?::BIGINT, ?::DECIMAL(38, 12), now())",
                rows,
            )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return len(rows)

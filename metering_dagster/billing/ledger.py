"""The outbox of meter events (`ops.stripe_ledger`): what Stripe should hold vs what was sent.

Per customer × meter × period, `marts.fct_usage_by_period` says what Stripe should hold. The
ledger holds one row per meter event we decided to send, written as `pending` *before* it is
sent and marked `sent` after Stripe accepted it:

- `sum`/`count` meters (Stripe `sum`): a new row carries the delta `quantity - Σ value`.
- the other aggregations (Stripe `last`): a new row carries the period's current value when it
  differs from the last value in the ledger. Its timestamp is `last_event_at` clamped into the
  period and kept strictly after the previous row's, so Stripe's "last" is always our newest.

A row's identifier is a hash of (environment, customer, meter, period start, seq), where seq
numbers the rows of that key: a pending row re-sent after a crash carries the same identifier
and Stripe, which enforces identifier uniqueness, counts it once. Since pending rows already
count towards the ledger's total, a re-run with no new data writes nothing and sends nothing.

Once Stripe has finalized a period's invoice (`ops.period_invoices.finalized`, kept by
`periods/invoices.py`), nothing more is sent to the meters for that period: no new rows are
planned, and rows still pending (deferred, failed) become `superseded`. What changed since is
billed as an adjustment on the next invoice (`periods/adjustments.py`), never into the final one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import duckdb

from metering_dagster.billing.periods import from_epoch
from metering_dagster.billing.tables import ensure_billing_tables
from metering_dagster.contract.model import Contract
from metering_dagster.periods.tables import ensure_period_tables, finalized_periods_sql, is_finalized_sql
from metering_dagster.warehouse import insert_rows

USAGE_TABLE = "marts.fct_usage_by_period"


@dataclass(frozen=True)
class LedgerRow:
    identifier: str
    customer_id: str
    meter: str
    period_start: datetime
    period_end: datetime
    seq: int
    stripe_formula: str
    value: Decimal
    quantity_after: Decimal
    event_timestamp: datetime


def event_identifier(environment: str, customer_id: str, meter: str, period_start: datetime, seq: int) -> str:
    """Deterministic meter event identifier (≤ 100 chars, as Stripe requires)."""
    key = f"{environment}|{customer_id}|{meter}|{int(period_start.timestamp())}|{seq}"
    return "mtr_" + hashlib.sha256(key.encode()).hexdigest()[:60]


def _clamp(ts: int, start: int, end: int) -> int:
    """Into [start, end): the last whole second of the period at most."""
    return max(start, min(ts, end - 1))


def _usage_rows(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    cols = {
        r[0]
        for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'marts' AND table_name = 'fct_usage_by_period'"
        ).fetchall()
    }
    if not cols:
        raise LookupError(f"{USAGE_TABLE} does not exist: build the dbt marts before reporting usage")
    last = "epoch(last_event_at)::BIGINT" if "last_event_at" in cols else "NULL::BIGINT"
    return con.execute(
        f"""SELECT customer_id, meter, epoch(period_start)::BIGINT, epoch(period_end)::BIGINT,
                   CAST(quantity AS DECIMAL(38, 12)), {last}
            FROM {USAGE_TABLE}"""
    ).fetchall()


def plan_ledger_rows(
    con: duckdb.DuckDBPyConnection, contract: Contract, *, withheld_customers: frozenset[str] = frozenset()
) -> list[LedgerRow]:
    """The rows that would bring the ledger to what the marts say (nothing is written)."""
    ensure_billing_tables(con)
    ensure_period_tables(con)
    formulas = {m.key: m.stripe_formula for m in contract.meters}
    customers = {c.id for c in contract.customers}
    closed = {(c, int(ps.timestamp())) for c, ps in con.execute(finalized_periods_sql()).fetchall()}
    state = {
        (c, m, ps): (seq, total, last_q, last_ts)
        for c, m, ps, seq, total, last_q, last_ts in con.execute(
            """SELECT customer_id, meter, epoch(period_start)::BIGINT, max(seq), sum(value),
                      arg_max(quantity_after, seq), max(epoch(event_timestamp))::BIGINT
               FROM ops.stripe_ledger GROUP BY ALL"""
        ).fetchall()
    }
    rows = []
    for customer, meter, ps, pe, quantity, last_at in sorted(_usage_rows(con), key=lambda r: r[:3]):
        if meter not in formulas or customer not in customers or customer in withheld_customers:
            continue
        if (customer, ps) in closed:  # final in Stripe: billed by an adjustment instead
            continue
        quantity = Decimal(quantity or 0)
        formula = formulas[meter]
        seq, total, last_q, last_ts = state.get((customer, meter, ps), (0, Decimal(0), None, None))
        ts = _clamp(last_at if last_at is not None else pe - 1, ps, pe)
        if formula == "sum":
            value = quantity - Decimal(total or 0)
            if value == 0:
                continue
        else:
            if (last_q is None and quantity == 0) or (last_q is not None and Decimal(last_q) == quantity):
                continue
            value = quantity
            if last_ts is not None:
                ts = _clamp(max(ts, last_ts + 1), ps, pe)
        period_start = from_epoch(ps)
        rows.append(
            LedgerRow(
                identifier=event_identifier(contract.environment, customer, meter, period_start, seq + 1),
                customer_id=customer,
                meter=meter,
                period_start=period_start,
                period_end=from_epoch(pe),
                seq=seq + 1,
                stripe_formula=formula,
                value=value,
                quantity_after=quantity,
                event_timestamp=from_epoch(ts),
            )
        )
    return rows


def write_pending(
    con: duckdb.DuckDBPyConnection, contract: Contract, *, withheld_customers: frozenset[str] = frozenset()
) -> list[LedgerRow]:
    """Write the outbox rows for what changed since the last run, all in one transaction."""
    rows = plan_ledger_rows(con, contract, withheld_customers=withheld_customers)
    if not rows:
        return rows
    con.execute("BEGIN TRANSACTION")
    try:
        insert_rows(
            con,
            """INSERT INTO ops.stripe_ledger (identifier, customer_id, meter, period_start, period_end, seq,
                   stripe_formula, value, quantity_after, event_timestamp, status, attempts, created_at)""",
            "(?, ?, ?, to_timestamp(?), to_timestamp(?), ?, ?, ?, ?, to_timestamp(?), 'pending', 0, now())",
            [
                [
                    r.identifier, r.customer_id, r.meter, int(r.period_start.timestamp()), int(r.period_end.timestamp()),
                    r.seq, r.stripe_formula, r.value, r.quantity_after, int(r.event_timestamp.timestamp()),
                ]
                for r in rows
            ],
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return rows


@dataclass(frozen=True)
class PendingEvent:
    identifier: str
    customer_id: str
    meter: str
    stripe_customer_id: str | None
    stripe_test_clock_id: str | None
    value: Decimal
    event_timestamp: int  # epoch seconds


def pending_events(
    con: duckdb.DuckDBPyConnection, *, withheld_customers: frozenset[str] = frozenset()
) -> list[PendingEvent]:
    ensure_period_tables(con)
    rows = con.execute(
        f"""SELECT l.identifier, l.customer_id, l.meter, c.stripe_customer_id, c.stripe_test_clock_id, l.value,
                  epoch(l.event_timestamp)::BIGINT
           FROM ops.stripe_ledger l LEFT JOIN ops.stripe_customers c USING (customer_id)
           WHERE l.status = 'pending'
             AND NOT {is_finalized_sql('l')}
           ORDER BY l.customer_id, l.meter, l.period_start, l.seq"""
    ).fetchall()
    return [PendingEvent(*r) for r in rows if r[1] not in withheld_customers]


def mark_sent(con: duckdb.DuckDBPyConnection, identifiers: list[str], note: str | None = None) -> None:
    if identifiers:
        con.execute(
            """UPDATE ops.stripe_ledger SET status = 'sent', sent_at = now(), attempts = attempts + 1,
                   last_error = ?, last_error_at = CASE WHEN ? IS NULL THEN last_error_at ELSE now() END
               WHERE identifier IN (SELECT unnest(?::VARCHAR[])) AND status = 'pending'""",
            [note, note, identifiers],
        )


def mark_error(con: duckdb.DuckDBPyConnection, identifiers: list[str], error: str, *, attempted: bool) -> None:
    """Keep the rows pending, with the reason visible."""
    if identifiers:
        con.execute(
            """UPDATE ops.stripe_ledger SET last_error = ?, last_error_at = now(),
                   attempts = attempts + CASE WHEN ? THEN 1 ELSE 0 END
               WHERE identifier IN (SELECT unnest(?::VARCHAR[])) AND status = 'pending'""",
            [error[:1000], attempted, identifiers],
        )


def supersede_finalized(con: duckdb.DuckDBPyConnection) -> int:
    """Pending rows of periods whose invoice is final will never be sent: mark them `superseded`."""
    ensure_period_tables(con)
    return con.execute(
        f"""UPDATE ops.stripe_ledger AS l SET status = 'superseded',
               last_error = 'invoice finalized: billed as an adjustment on the next invoice', last_error_at = now()
           WHERE status = 'pending' AND {is_finalized_sql('l')}"""
    ).fetchone()[0]


def pending_periods(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, int], int]:
    """(customer, period start epoch) -> ledger rows still pending."""
    return {
        (c, ps): n
        for c, ps, n in con.execute(
            """SELECT customer_id, epoch(period_start)::BIGINT, count(*) FROM ops.stripe_ledger
               WHERE status = 'pending' GROUP BY ALL"""
        ).fetchall()
    }

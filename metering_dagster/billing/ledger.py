"""The outbox of meter events (`ops.stripe_ledger`): what Stripe should hold vs what was sent.

Per customer × meter × period, `marts.fct_usage_by_period` says what Stripe should hold. The
ledger holds one row per meter event we decided to send, written as `pending` *before* it is
sent and marked `sent` after Stripe accepted it:

- `sum`/`count` meters (Stripe `sum`): a new row carries the delta `quantity - Σ value`.
- the other aggregations (Stripe `last`): a new row carries the period's current value when it
  differs from the last value in the ledger. Its timestamp is `last_event_at` clamped into the
  period and kept strictly after the previous row's, so Stripe's "last" is always our newest.

A row's identifier is a hash of (ledger incarnation, environment, customer, meter, period
start, seq), where seq numbers the rows of that key: a pending row re-sent after a crash carries
the same identifier and Stripe, which enforces identifier uniqueness, counts it once. Since
pending rows already count towards the ledger's total, a re-run with no new data writes nothing
and sends nothing. The incarnation is a random id created with the ledger
(`ops.stripe_ledger_incarnation`): a ledger lost with its warehouse and built again gets a new
one, so its identifiers never collide with those an earlier ledger gave Stripe (Stripe would
refuse them as duplicates). Rows written before incarnations existed keep the identifier they
were written with (identifiers are stored, never recomputed).

Two more kinds of truth feed the totals:
- a `baseline` row (seq 0, never sent) records what Stripe already held for a key when this
  ledger first met it, if an earlier ledger may have sent usage there (`baseline.py`): the delta
  of a `sum` meter is computed against it, a `last` value is sent only if it differs from it;
- a row delivered to a Stripe customer that is no longer the customer's (`sent_to` differs from
  `ops.stripe_customers`, e.g. the Stripe customer was deleted and created again) does not count:
  the new Stripe customer holds none of it.

Stripe keeps an identifier unique only "within a rolling period of at least 24 hours", so a pending
row first tried longer ago than that may no longer be recognised: before such a row is sent again,
Stripe's summary of its key decides (`identifier_window.py`). Its pending rows are then either
delivered (Stripe holds the ledger's total: `sent`, noted "delivered by summary") or `replaced` by a
`summary` row (what Stripe held of them, never sent) and a new row, under a new identifier, carrying
only what Stripe lacks. `first_sent_at` (our clock) and `first_sent_stripe_at` (the customer's Stripe
clock) record a row's first send attempt, written before the request.

Rows Stripe rejected after accepting them in the stream (`error_reports.py`) are back to
`pending` with `rejected_code` and the reason in `last_error`; they still count, and are sent
again (or held while the customer cannot receive events). A row whose value Stripe refused is
`replaced` by the next row of its key, which then carries the whole difference.

Once Stripe has finalized a period's invoice (`ops.period_invoices.finalized`, kept by
`billing/invoices.py`), nothing more is sent to the meters for that period: no new rows are
planned, and rows still pending (deferred, failed) become `superseded`. What changed since is
billed as an adjustment on the next invoice (`periods/adjustments.py`), never into the final one.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import duckdb

from metering_dagster.billing.months import from_epoch
from metering_dagster.contract.model import Contract
from metering_dagster.schema import (
    ensure_ledger_tables,
    ensure_period_tables,
    finalized_periods_sql,
    is_finalized_sql,
)
from metering_dagster.warehouse import insert_rows

USAGE_TABLE = "marts.fct_usage_by_period"
INVOICE_LINES_TABLE = "marts.fct_invoice_lines_expected"


def ensure_ledger(con: duckdb.DuckDBPyConnection) -> str:
    """The ledger's tables, and its incarnation id (created with the ledger, or on the first run of an
    existing ledger, which is then as old as its first row)."""
    ensure_ledger_tables(con)
    row = con.execute("SELECT incarnation_id FROM ops.stripe_ledger_incarnation").fetchone()
    if row is not None:
        return row[0]
    incarnation = uuid.uuid4().hex
    con.execute(
        "INSERT INTO ops.stripe_ledger_incarnation SELECT ?, coalesce(min(created_at), now()) FROM ops.stripe_ledger",
        [incarnation],
    )
    return incarnation


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
    replaces: tuple[str, ...] = ()  # pending rows Stripe refused, replaced by this one


def event_identifier(
    environment: str, customer_id: str, meter: str, period_start: datetime, seq: int, incarnation: str | None = None
) -> str:
    """Deterministic meter event identifier (≤ 100 chars, as Stripe requires); without an incarnation,
    the identifier of the rows written before incarnations existed."""
    key = f"{environment}|{customer_id}|{meter}|{int(period_start.timestamp())}|{seq}"
    if incarnation is not None:
        key = f"{incarnation}|{key}"
    return "mtr_" + hashlib.sha256(key.encode()).hexdigest()[:60]


def successor_identifier(previous: str, seq: int) -> str:
    """The identifier of a row that takes over a key from `previous` (which already hashes the ledger's
    incarnation, environment, customer, meter and period), at `seq`: unique, and never one Stripe saw."""
    return "mtr_" + hashlib.sha256(f"{previous}|{seq}".encode()).hexdigest()[:60]


def baseline_identifier(incarnation: str, customer_id: str, meter: str, period_start_epoch: int) -> str:
    """The key of a baseline row (never sent: it is not a Stripe identifier)."""
    key = f"{incarnation}|{customer_id}|{meter}|{period_start_epoch}"
    return "baseline_" + hashlib.sha256(key.encode()).hexdigest()[:60]


def _clamp(ts: int, start: int, end: int) -> int:
    """Into [start, end): the last whole second of the period at most."""
    return max(start, min(ts, end - 1))


def _table_columns(con: duckdb.DuckDBPyConnection, qualified: str) -> set[str]:
    schema, table = qualified.split(".")
    return {
        r[0]
        for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ?",
            [schema, table],
        ).fetchall()
    }


def _usage_rows(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    cols = _table_columns(con, USAGE_TABLE)
    if not cols:
        raise LookupError(f"{USAGE_TABLE} does not exist: build the dbt marts before reporting usage")
    last = "epoch(last_event_at)::BIGINT" if "last_event_at" in cols else "NULL::BIGINT"
    return con.execute(
        f"""SELECT customer_id, meter, epoch(period_start)::BIGINT, epoch(period_end)::BIGINT,
                   CAST(quantity AS DECIMAL(38, 12)), {last}
            FROM {USAGE_TABLE}"""
    ).fetchall()


def billable_keys_sql(con: duckdb.DuckDBPyConnection) -> str:
    """(customer_id, meter, period_start, period_end) of every key the warehouse bills: those with usage
    and every line of the shadow invoice (quantity 0 included)."""
    parts = [f"SELECT customer_id, meter, period_start, period_end FROM {USAGE_TABLE}"]
    if _table_columns(con, INVOICE_LINES_TABLE):
        parts.append(f"SELECT customer_id, meter, period_start, period_end FROM {INVOICE_LINES_TABLE}")
    return " UNION ".join(parts)


def keys_awaiting_baseline(con: duckdb.DuckDBPyConnection, incarnation: str) -> list[tuple]:
    """(customer, meter, period start, period end epochs, Stripe customer, Stripe meter) of the keys this
    ledger has not met yet, of a meter an earlier ledger may have sent usage to, in a period that began
    before this ledger claimed the meter and is not finalized: Stripe may already hold usage there."""
    if not _table_columns(con, USAGE_TABLE):
        return []
    return con.execute(
        f"""SELECT k.customer_id, k.meter, epoch(k.period_start)::BIGINT, epoch(k.period_end)::BIGINT,
                   c.stripe_customer_id, m.stripe_meter_id
            FROM ({billable_keys_sql(con)}) k
            JOIN ops.stripe_meters m USING (meter)
            JOIN ops.stripe_ledger_meters lm
              ON lm.meter = k.meter AND lm.stripe_meter_id = m.stripe_meter_id AND lm.incarnation_id = ?
            LEFT JOIN ops.stripe_customers c USING (customer_id)
            WHERE lm.baseline_before IS NOT NULL AND k.period_start < lm.baseline_before
              AND NOT EXISTS (SELECT 1 FROM ops.stripe_ledger l WHERE l.customer_id = k.customer_id
                              AND l.meter = k.meter AND l.period_start = k.period_start)
              AND NOT {is_finalized_sql("k")}
            ORDER BY 1, 2, 3""",
        [incarnation],
    ).fetchall()


# Refusals that are the customer's, not the row's: its rows wait, unchanged, until Stripe takes its events.
CUSTOMER_REJECTIONS = ("meter_event_customer_not_found", "meter_event_no_customer_defined")


@dataclass(frozen=True)
class _KeyState:
    seq: int  # highest seq of the key
    total: Decimal  # Σ value of the rows that count towards what Stripe holds (or will)
    last_quantity: Decimal | None  # quantity_after of the newest such row
    last_ts: int | None  # latest event timestamp of the key's rows
    period_end: int
    refused: tuple[str, ...]  # pending rows whose value Stripe refused: replaced by the next row of the key
    refused_total: Decimal


# Rows that count towards what Stripe holds (or will): not replaced, not delivered to a Stripe customer that
# is no longer the customer's (`l` the ledger, `c` ops.stripe_customers).
COUNTED_SQL = (
    "(l.status <> 'replaced' AND (l.sent_to IS NULL OR c.stripe_customer_id IS NULL"
    " OR l.sent_to = c.stripe_customer_id))"
)


def _ledger_state(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str, int], _KeyState]:
    """Per key, what the ledger has (`COUNTED_SQL`)."""
    counted = COUNTED_SQL
    refused = "(l.status = 'pending' AND l.rejected_code IS NOT NULL AND l.rejected_code NOT IN (SELECT unnest(?::VARCHAR[])))"
    return {
        (cu, m, ps): _KeyState(seq, total, last_q, last_ts, pe, tuple(sorted(refused_ids or [])), refused_total)
        for cu, m, ps, seq, total, last_q, last_ts, pe, refused_ids, refused_total in con.execute(
            f"""SELECT l.customer_id, l.meter, epoch(l.period_start)::BIGINT, max(l.seq),
                       coalesce(sum(l.value) FILTER (WHERE {counted}), 0),
                       arg_max(l.quantity_after, l.seq) FILTER (WHERE {counted}),
                       max(epoch(l.event_timestamp))::BIGINT, epoch(max(l.period_end))::BIGINT,
                       list(l.identifier) FILTER (WHERE {refused}), coalesce(sum(l.value) FILTER (WHERE {refused}), 0)
                FROM ops.stripe_ledger l LEFT JOIN ops.stripe_customers c USING (customer_id)
                GROUP BY ALL""",
            [list(CUSTOMER_REJECTIONS), list(CUSTOMER_REJECTIONS)],
        ).fetchall()
    }


def plan_ledger_rows(
    con: duckdb.DuckDBPyConnection, contract: Contract, *, withheld_customers: frozenset[str] = frozenset()
) -> list[LedgerRow]:
    """The rows that would bring the ledger to what the marts say (nothing is written).

    A key that the ledger knows but the marts no longer have (its events are gone) is brought to 0;
    a key waiting for its baseline (`keys_awaiting_baseline`) is not planned until it has one. A
    pending row whose value Stripe refused keeps being sent while its key does not change; when the
    key changes, the new row carries the whole difference and replaces it.
    """
    incarnation = ensure_ledger(con)
    formulas = {m.key: m.stripe_formula for m in contract.meters}
    customers = {c.id for c in contract.customers}
    closed = {(c, int(ps.timestamp())) for c, ps in con.execute(finalized_periods_sql()).fetchall()}
    state = _ledger_state(con)
    awaiting = {k[:3] for k in keys_awaiting_baseline(con, incarnation)}
    usage = {(c, m, ps): (pe, q, last_at) for c, m, ps, pe, q, last_at in _usage_rows(con)}
    for key, known in state.items():
        usage.setdefault(key, (known.period_end, Decimal(0), None))
    rows = []
    for (customer, meter, ps), (pe, quantity, last_at) in sorted(usage.items()):
        if meter not in formulas or customer not in customers or customer in withheld_customers:
            continue
        if (customer, ps) in closed or (customer, meter, ps) in awaiting:
            continue  # final in Stripe: billed by an adjustment instead; or Stripe's baseline not read yet
        quantity = Decimal(quantity or 0)
        formula = formulas[meter]
        known = state.get((customer, meter, ps)) or _KeyState(0, Decimal(0), None, None, pe, (), Decimal(0))
        if last_at is None and known.last_ts is not None:
            last_at = known.last_ts  # no event time in the marts: no later than what the ledger last sent
        ts = _clamp(last_at if last_at is not None else pe - 1, ps, pe)
        if formula == "sum":
            if quantity == known.total:
                continue
            value = quantity - (known.total - known.refused_total)
        else:
            last_q = known.last_quantity
            if (last_q is None and quantity == 0) or (last_q is not None and Decimal(last_q) == quantity):
                continue
            value = quantity
            if known.last_ts is not None:
                ts = _clamp(max(ts, known.last_ts + 1), ps, pe)
        period_start = from_epoch(ps)
        rows.append(
            LedgerRow(
                identifier=event_identifier(
                    contract.environment, customer, meter, period_start, known.seq + 1, incarnation
                ),
                customer_id=customer,
                meter=meter,
                period_start=period_start,
                period_end=from_epoch(pe),
                seq=known.seq + 1,
                stripe_formula=formula,
                value=value,
                quantity_after=quantity,
                event_timestamp=from_epoch(ts),
                replaces=known.refused,
            )
        )
    return rows


def _insert(
    con: duckdb.DuckDBPyConnection,
    rows: list[LedgerRow],
    status: str,
    kind: str,
    sent_to: dict[str, str | None] | None = None,
    note: str | None = None,
) -> None:
    insert_rows(
        con,
        """INSERT INTO ops.stripe_ledger (identifier, customer_id, meter, period_start, period_end, seq,
               stripe_formula, value, quantity_after, event_timestamp, status, attempts, created_at, kind,
               sent_at, confirmed_at, sent_to, last_error)""",
        "(?, ?, ?, to_timestamp(?), to_timestamp(?), ?, ?, ?, ?, to_timestamp(?), ?, 0, now(), ?,"
        " CASE WHEN ? = 'sent' THEN now() END, CASE WHEN ? = 'sent' THEN now() END, ?, ?)",
        [
            [
                r.identifier,
                r.customer_id,
                r.meter,
                int(r.period_start.timestamp()),
                int(r.period_end.timestamp()),
                r.seq,
                r.stripe_formula,
                r.value,
                r.quantity_after,
                int(r.event_timestamp.timestamp()),
                status,
                kind,
                status,
                status,
                (sent_to or {}).get(r.customer_id),
                note,
            ]
            for r in rows
        ],
    )


def write_pending(
    con: duckdb.DuckDBPyConnection, contract: Contract, *, withheld_customers: frozenset[str] = frozenset()
) -> list[LedgerRow]:
    """Write the outbox rows for what changed since the last run, all in one transaction."""
    rows = plan_ledger_rows(con, contract, withheld_customers=withheld_customers)
    if not rows:
        return rows
    con.execute("BEGIN TRANSACTION")
    try:
        replaced = [identifier for r in rows for identifier in r.replaces]
        if replaced:
            con.execute(
                """UPDATE ops.stripe_ledger SET status = 'replaced', last_error_at = now(),
                       last_error = 'replaced by a later row of its key: ' || coalesce(last_error, rejected_code)
                   WHERE identifier IN (SELECT unnest(?::VARCHAR[])) AND status = 'pending'""",
                [replaced],
            )
        _insert(con, rows, "pending", "event")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return rows


def write_baselines(con: duckdb.DuckDBPyConnection, rows: list[LedgerRow], sent_to: dict[str, str | None]) -> None:
    """Record what Stripe already held for keys this ledger had not met (seq 0, never sent)."""
    if rows:
        _insert(
            con,
            rows,
            "sent",
            "baseline",
            sent_to,
            "baseline: what Stripe already held when this ledger first met the key (an earlier ledger sent it)",
        )


@dataclass(frozen=True)
class PendingEvent:
    identifier: str
    customer_id: str
    meter: str
    stripe_customer_id: str | None
    stripe_test_clock_id: str | None
    value: Decimal
    event_timestamp: int  # epoch seconds
    period_start: int = 0  # epoch seconds
    first_sent_age_seconds: int | None = None  # our clock: how long ago the row was first tried
    first_sent_stripe_at: int | None = None  # Stripe's time (the customer's clock) of that first try

    @property
    def key(self) -> tuple[str, str, int]:
        return self.customer_id, self.meter, self.period_start


def pending_events(
    con: duckdb.DuckDBPyConnection,
    *,
    withheld_customers: frozenset[str] = frozenset(),
    held_customers: frozenset[str] = frozenset(),
) -> list[PendingEvent]:
    """Pending rows to send, except those of withheld customers and of customers Stripe cannot take
    events for (`held_customers`, see error_reports.py)."""
    ensure_ledger(con)
    rows = con.execute(
        f"""SELECT l.identifier, l.customer_id, l.meter, c.stripe_customer_id, c.stripe_test_clock_id, l.value,
                  epoch(l.event_timestamp)::BIGINT, epoch(l.period_start)::BIGINT,
                  epoch(now())::BIGINT - epoch(l.first_sent_at)::BIGINT, epoch(l.first_sent_stripe_at)::BIGINT
           FROM ops.stripe_ledger l LEFT JOIN ops.stripe_customers c USING (customer_id)
           WHERE l.status = 'pending'
             AND NOT {is_finalized_sql("l")}
           ORDER BY l.customer_id, l.meter, l.period_start, l.seq"""
    ).fetchall()
    skip = withheld_customers | held_customers
    return [PendingEvent(*r) for r in rows if r[1] not in skip]


def mark_tried(con: duckdb.DuckDBPyConnection, stripe_times: dict[str, int]) -> None:
    """Before a request: the first send attempt of each row (identifier -> Stripe's time for its customer)."""
    if stripe_times:
        con.execute(
            """UPDATE ops.stripe_ledger AS l SET first_sent_at = coalesce(l.first_sent_at, now()),
                   first_sent_stripe_at = coalesce(l.first_sent_stripe_at, to_timestamp(t.stripe_at))
               FROM (SELECT unnest(?::VARCHAR[]) AS identifier, unnest(?::BIGINT[]) AS stripe_at) t
               WHERE l.identifier = t.identifier""",
            [list(stripe_times), list(stripe_times.values())],
        )


def mark_sent(con: duckdb.DuckDBPyConnection, identifiers: list[str], note: str | None = None) -> None:
    """Stripe took the rows (to the customer's current Stripe customer)."""
    if identifiers:
        con.execute(
            """UPDATE ops.stripe_ledger AS l SET status = 'sent', sent_at = now(), attempts = attempts + 1,
                   last_error = ?, last_error_at = CASE WHEN ? IS NULL THEN last_error_at ELSE now() END,
                   rejected_code = NULL, confirmed_at = NULL,
                   sent_to = (SELECT c.stripe_customer_id FROM ops.stripe_customers c WHERE c.customer_id = l.customer_id)
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


def mark_rejected(con: duckdb.DuckDBPyConnection, identifiers: list[str], code: str | None, error: str) -> int:
    """Stripe refused rows it had accepted in the stream: back to pending, not delivered, with the reason
    (`code` NULL for a refusal that only waits for Stripe's clock, like a timestamp out of its window)."""
    if not identifiers:
        return 0
    return con.execute(
        """UPDATE ops.stripe_ledger SET status = 'pending', sent_at = NULL, sent_to = NULL, confirmed_at = NULL,
               rejected_code = ?, last_error = ?, last_error_at = now()
           WHERE identifier IN (SELECT unnest(?::VARCHAR[])) AND kind = 'event' AND status IN ('sent', 'pending')""",
        [code, error[:1000], identifiers],
    ).fetchone()[0]


def supersede_finalized(con: duckdb.DuckDBPyConnection) -> int:
    """Pending rows of periods whose invoice is final will never be sent: mark them `superseded`."""
    ensure_period_tables(con)
    return con.execute(
        f"""UPDATE ops.stripe_ledger AS l SET status = 'superseded',
               last_error = 'invoice finalized: billed as an adjustment on the next invoice', last_error_at = now()
           WHERE status = 'pending' AND {is_finalized_sql("l")}"""
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


@dataclass(frozen=True)
class Settlement:
    """What Stripe's summary decided for a key whose pending rows' identifiers are not trusted any more."""

    rows: int  # pending rows of the key
    delivered: bool  # Stripe held the ledger's total: the rows are sent, nothing to send
    new_identifier: str | None  # the row carrying what Stripe lacked (to send), if any


def settle_by_summary(
    con: duckdb.DuckDBPyConnection, key: tuple[str, str, int], stripe_total: Decimal, why: str
) -> Settlement:
    """Bring a key's pending rows to what Stripe's summary shows it holds (`identifier_window.py`), in one
    transaction: `sum`, Stripe holds the ledger's total: the rows are delivered; otherwise they are replaced
    by a `summary` row (what Stripe held of them) and a new row of the difference. `last`: delivered when
    Stripe's value is the ledger's newest, otherwise replaced by a new row of that value, timed after them."""
    rows = con.execute(
        f"""SELECT l.identifier, l.seq, l.status = 'pending' AND l.kind = 'event', l.value, l.quantity_after,
                   epoch(l.event_timestamp)::BIGINT, l.stripe_formula, epoch(l.period_end)::BIGINT
            FROM ops.stripe_ledger l LEFT JOIN ops.stripe_customers c USING (customer_id)
            WHERE l.customer_id = ? AND l.meter = ? AND epoch(l.period_start)::BIGINT = ? AND {COUNTED_SQL}
            ORDER BY l.seq""",
        list(key),
    ).fetchall()
    pending = [r for r in rows if r[2]]
    if not pending:
        return Settlement(0, False, None)
    ids = [r[0] for r in pending]
    formula, period_end = rows[0][6], rows[0][7]
    newest = rows[-1]
    held_before = sum((r[3] for r in rows if not r[2]), Decimal(0))
    if formula == "sum":
        expected = sum((r[3] for r in rows), Decimal(0))
        missing = expected - stripe_total
        found, value = stripe_total - held_before, missing
    else:
        expected = Decimal(newest[4])
        missing = Decimal(0) if stripe_total == expected else expected
        found, value = Decimal(0), expected
    seen = f"{why}; Stripe's summary holds {stripe_total}, the ledger {expected}"
    if missing == 0:
        mark_sent(con, ids, note=f"delivered by summary ({seen})")
        return Settlement(len(ids), True, None)
    customer, meter, ps = key
    last_ts = max(r[5] for r in (pending if formula == "sum" else rows))
    seq = max(r[1] for r in rows)
    new_rows = []
    if found != 0:
        seq += 1
        new_rows.append(
            (
                "summary",
                "sent",
                LedgerRow(
                    successor_identifier(newest[0], seq),
                    customer,
                    meter,
                    from_epoch(ps),
                    from_epoch(period_end),
                    seq,
                    formula,
                    found,
                    stripe_total,
                    from_epoch(last_ts),
                ),
            )
        )
    seq += 1
    resent = LedgerRow(
        successor_identifier(newest[0], seq),
        customer,
        meter,
        from_epoch(ps),
        from_epoch(period_end),
        seq,
        formula,
        value,
        expected,
        from_epoch(last_ts if formula == "sum" else _clamp(last_ts + 1, ps, period_end)),
    )
    new_rows.append(("event", "pending", resent))
    sent_to = dict(
        con.execute(
            "SELECT customer_id, stripe_customer_id FROM ops.stripe_customers WHERE customer_id = ?", [customer]
        ).fetchall()
    )
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(
            """UPDATE ops.stripe_ledger SET status = 'replaced', last_error = ?, last_error_at = now()
               WHERE identifier IN (SELECT unnest(?::VARCHAR[])) AND status = 'pending'""",
            [f"replaced by {resent.identifier} ({seen})"[:1000], ids],
        )
        for kind, status, row in new_rows:
            _insert(
                con,
                [row],
                status,
                kind,
                sent_to if status == "sent" else None,
                f"delivered by summary: what Stripe held of the rows it replaces ({seen})"
                if kind == "summary"
                else None,
            )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return Settlement(len(ids), False, resent.identifier)

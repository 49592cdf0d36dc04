"""Stripe's asynchronous rejections of stream meter events, read back into the ledger.

The v2 meter event stream answers 202 before it validates. The events Stripe then refuses are
reported as v2 events: `v1.billing.meter.error_report_triggered` (its related object is the meter)
and `v1.billing.meter.no_meter_found` (no meter has the event name), each with a validation window,
a count per error code and a few sample errors naming the event's `identifier`.
`read_error_reports` lists them (`GET /v2/core/events`), fetches each new one, and applies it:

- `duplicate_meter_event`: Stripe already has the identifier. Identifiers are unique to this
  ledger (its incarnation is hashed in, see ledger.py), so this ledger sent it: the row is delivered.
- `meter_event_customer_not_found`, `meter_event_no_customer_defined`: the customer cannot receive
  events. Its rows sent in the report's window go back to pending and the customer is *held*
  (`ops.stripe_rejected_customers`): nothing more is sent for it, and it is a named problem (check
  `usage_delivered`), until its Stripe customer exists again or the object sync maps it to another one.
- a timestamp outside Stripe's window: back to pending, deferred like any such row.
- any other code (a value Stripe refuses, an inactive meter ...): back to pending with `rejected_code`
  and Stripe's message; the next upload sends it again, and it is a named problem until Stripe takes it.

A report names only a few sample errors per code. Where it counts more errors of a code than it
names, the rows of that meter sent in its window are checked against Stripe's meter event summary of
their customer, meter and period: where Stripe holds another total than the ledger says was
delivered, those rows go back to pending, whole. Re-sending a row Stripe did take is answered as a
duplicate while Stripe still knows its identifier (at least 24 hours); a row first tried longer ago
than `identifier_window.TRUST_IDENTIFIER_SECONDS` is not re-sent as it is: Stripe's summary of its key
decides what is still missing, so nothing is counted twice however late the report is read.

Each report is applied once: its id is recorded in `ops.stripe_error_reports` in the same
transaction as the ledger changes it causes, so a run that dies before that commit reads it again.
Reports are listed newest first down to an hour before the newest one recorded (Stripe keeps
events 30 days; older recorded ids are dropped).

**When a sent row counts as confirmed.** Stripe does not say when it has validated an event. A row
is confirmed (`confirmed_at`) once a read of the reports that started at least
`CONFIRM_AFTER_SECONDS` (one hour) after the row was sent found no rejection of it. Runs do not wait
for that: each upload reads the reports before planning (rejections of earlier runs are planned
again at once) and right after sending (what Stripe has rejected by then); a row awaiting
confirmation is no problem, and a rejection that comes later still is applied all the same.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import duckdb
import stripe

from metering_dagster.billing import ledger
from metering_dagster.billing.reads import pick
from metering_dagster.billing.snapshot import _summary_total
from metering_dagster.billing.values import decimal_from_json_number
from metering_dagster.schema import ensure_error_report_tables

REPORT_TYPES = ("v1.billing.meter.error_report_triggered", "v1.billing.meter.no_meter_found")
CONFIRM_AFTER_SECONDS = 3600
CURSOR_OVERLAP_SECONDS = 3600  # reports can be created out of order: list an hour before the newest recorded
KEEP_REPORT_IDS_DAYS = 31  # Stripe lists events of the last 30 days
FUTURE_SLACK_SECONDS = 300

DUPLICATE = "duplicate_meter_event"
CUSTOMER_CODES = frozenset(ledger.CUSTOMER_REJECTIONS)
TIME_CODES = frozenset({"timestamp_too_far_in_past", "timestamp_in_future"})


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    ledger.ensure_ledger(con)
    ensure_error_report_tables(con)


def parse_time(value: Any) -> float:
    """Epoch seconds of a Stripe time: epoch number, datetime or RFC 3339 text."""
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, datetime):
        return value.timestamp()
    return datetime.fromisoformat(str(value)).timestamp()


@dataclass(frozen=True)
class Rejection:
    customer_id: str
    meter: str
    period_start: datetime
    code: str
    message: str


@dataclass
class ReportsResult:
    reports_read: int = 0
    rejected: list[Rejection] = field(default_factory=list)  # rows back to pending by Stripe's refusal
    deferred: int = 0  # rows back to pending because their timestamp is outside Stripe's window
    delivered: int = 0  # pending rows Stripe showed it already had
    customers_held: list[str] = field(default_factory=list)  # held by this read
    customers_released: list[str] = field(default_factory=list)
    summaries_checked: int = 0  # keys checked against Stripe where a report named fewer errors than it counted
    confirmed: int = 0
    problems: list[str] = field(default_factory=list)  # reports left to the next read, and why


@dataclass
class _Plan:
    """What the new reports mean for the ledger, applied in one transaction."""

    delivered: set[str] = field(default_factory=set)
    rejected: dict[str, tuple[str | None, str]] = field(default_factory=dict)  # identifier -> (code, message)
    held: dict[str, tuple[str | None, str, str]] = field(default_factory=dict)  # customer -> (Stripe id, code, msg)
    reports: list[tuple] = field(default_factory=list)

    def reject(self, identifier: str, code: str | None, message: str) -> None:
        self.rejected.setdefault(identifier, (code, message))

    def merge(self, other: _Plan) -> None:
        self.delivered |= other.delivered
        for identifier, reason in other.rejected.items():
            self.rejected.setdefault(identifier, reason)
        for customer, reason in other.held.items():
            self.held.setdefault(customer, reason)
        self.reports += other.reports


# -- listing -------------------------------------------------------------------------------------


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _new_reports(client: stripe.StripeClient, con: duckdb.DuckDBPyConnection) -> list[Any]:
    """Reports not applied yet, each fetched in full, oldest first."""
    newest = con.execute("SELECT epoch(max(created)) FROM ops.stripe_error_reports").fetchone()[0]
    since = None if newest is None else float(newest) - CURSOR_OVERLAP_SECONDS
    params: dict[str, Any] = {"types": list(REPORT_TYPES), "limit": 100}
    if since is not None:
        params["created"] = {"gte": _iso(since)}
    recorded = {r[0] for r in con.execute("SELECT event_id FROM ops.stripe_error_reports").fetchall()}
    fresh = []
    for event in client.v2.core.events.list(params).auto_paging_iter():
        if since is not None and parse_time(pick(event, "created")) < since:
            break  # newest first: the rest was read before
        if pick(event, "id") not in recorded:
            fresh.append(pick(event, "id"))
    details = [client.v2.core.events.retrieve(event_id) for event_id in fresh]
    return sorted(details, key=lambda e: parse_time(pick(e, "created")))


# -- what a report means -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Row:
    identifier: str
    customer_id: str
    meter: str
    period_start_epoch: int
    status: str
    sent_to: str | None
    current_stripe_customer: str | None


def _rows(con: duckdb.DuckDBPyConnection, where: str, params: list) -> list[_Row]:
    return [
        _Row(*r)
        for r in con.execute(
            f"""SELECT l.identifier, l.customer_id, l.meter, epoch(l.period_start)::BIGINT, l.status, l.sent_to,
                       c.stripe_customer_id
                FROM ops.stripe_ledger l LEFT JOIN ops.stripe_customers c USING (customer_id)
                WHERE l.kind = 'event' AND {where}""",
            params,
        ).fetchall()
    ]


def _window(data: Any) -> tuple[float, float]:
    start = parse_time(pick(data, "validation_start"))
    end = parse_time(pick(data, "validation_end", default=pick(data, "validation_start")))
    # rows sent up to CONFIRM_AFTER_SECONDS before Stripe validated them, up to its end (with clock drift)
    return start - CONFIRM_AFTER_SECONDS, end + FUTURE_SLACK_SECONDS


def _sent_in_window(con, window: tuple[float, float], where: str, params: list) -> list[_Row]:
    return _rows(
        con,
        f"l.status = 'sent' AND l.sent_at BETWEEN to_timestamp(?) AND to_timestamp(?) AND {where}",
        [window[0], window[1], *params],
    )


def _plan_report(
    con, report: Any, meter_of: dict[str, str], plan: _Plan, suspects: dict[tuple, list]
) -> tuple[int, str]:
    """Read one report into the plan; rows it counts but does not name go to `suspects`."""
    data = pick(report, "data")
    stripe_meter = pick(report, "related_object", "id")
    window = _window(data)
    error_types = pick(data, "reason", "error_types", default=[])
    named = [
        (pick(t, "code"), pick(s, "request", "identifier"), pick(s, "error_message", default=""))
        for t in error_types
        for s in pick(t, "sample_errors", default=[])
    ]
    known = {
        r.identifier: r
        for r in _rows(con, "l.identifier IN (SELECT unnest(?::VARCHAR[]))", [[i for _, i, _ in named if i]])
    }
    for code, identifier, message in named:
        row = known.get(identifier)
        if row is None:
            continue  # not this ledger's event
        text = f"rejected by Stripe: {code}: {message}"
        if code == DUPLICATE:
            plan.delivered.add(row.identifier)
        elif code in CUSTOMER_CODES:
            stripe_customer = row.sent_to or row.current_stripe_customer
            plan.held.setdefault(row.customer_id, (stripe_customer, code, message))
            plan.reject(row.identifier, code, text)
            for other in _sent_in_window(
                con,
                window,
                "l.customer_id = ? AND l.sent_to IS NOT DISTINCT FROM ?",
                [row.customer_id, stripe_customer],
            ):
                plan.reject(other.identifier, code, text)
        elif code in TIME_CODES:
            plan.reject(row.identifier, None, text)
        else:
            plan.reject(row.identifier, code, text)
    for t in error_types:
        code = pick(t, "code")
        unnamed = int(pick(t, "error_count", default=0)) - len(pick(t, "sample_errors", default=[]))
        if unnamed <= 0 or code == DUPLICATE:
            continue
        if stripe_meter not in meter_of:
            continue  # no meter of ours: nothing of ours to check
        for row in _sent_in_window(con, window, "l.meter = ?", [meter_of[stripe_meter]]):
            if row.identifier not in plan.rejected:
                suspects[(row.customer_id, row.meter, row.period_start_epoch)].append(
                    (row, code, f"rejected by Stripe: {code} (one of {unnamed} errors its report does not name)")
                )
    count = int(pick(data, "reason", "error_count", default=0))
    return count, str(pick(data, "developer_message_summary", default=""))[:300]


def _delivered_by_ledger(con, key: tuple, leaving: set[str], formula: str):
    """What the ledger says Stripe holds for a key, without the rows about to go back to pending."""
    rows = con.execute(
        """SELECT identifier, value, quantity_after FROM ops.stripe_ledger l
           WHERE customer_id = ? AND meter = ? AND epoch(period_start)::BIGINT = ? AND status = 'sent'
             AND sent_to IS NOT DISTINCT FROM (SELECT stripe_customer_id FROM ops.stripe_customers c
                                               WHERE c.customer_id = l.customer_id)
           ORDER BY event_timestamp, seq""",
        list(key),
    ).fetchall()
    rows = [r for r in rows if r[0] not in leaving]
    if formula == "sum":
        return sum((r[1] for r in rows), Decimal(0))
    return rows[-1][2] if rows else Decimal(0)


def _check_suspects(client, con, suspects: dict[tuple, list], plan: _Plan, result: ReportsResult) -> None:
    """Keys with rows a report may have rejected without naming them: compare with Stripe's summary."""
    if not suspects:
        return
    meters = dict(con.execute("SELECT meter, stripe_meter_id FROM ops.stripe_meters").fetchall())
    formulas = dict(con.execute("SELECT meter, stripe_formula FROM ops.stripe_meters").fetchall())
    ends = {
        (c, m, ps): pe
        for c, m, ps, pe in con.execute(
            "SELECT DISTINCT customer_id, meter, epoch(period_start)::BIGINT, epoch(period_end)::BIGINT "
            "FROM ops.stripe_ledger"
        ).fetchall()
    }
    for key, entries in sorted(suspects.items()):
        row = entries[0][0]
        customer, meter, ps = key
        stripe_customer = row.sent_to or row.current_stripe_customer
        try:
            _, _, _, _, stripe_total = _summary_total(
                client, (customer, meter, ps, ends[key], stripe_customer, meters[meter])
            )
        except stripe.InvalidRequestError as err:
            if getattr(err, "http_status", None) != 404:
                raise
            # the Stripe customer is gone: every row sent to it was refused
            plan.held.setdefault(customer, (stripe_customer, "meter_event_customer_not_found", str(err.user_message)))
            for suspect, _code, text in entries:
                plan.reject(suspect.identifier, "meter_event_customer_not_found", text)
            continue
        result.summaries_checked += 1
        expected = _delivered_by_ledger(con, key, set(plan.rejected), formulas.get(meter, "sum"))
        if decimal_from_json_number(stripe_total) != expected:
            for suspect, code, text in entries:
                plan.reject(suspect.identifier, None if code in TIME_CODES else code, text)


# -- applying -----------------------------------------------------------------------------------


def _hold(con, plan: _Plan, result: ReportsResult) -> None:
    for customer, (stripe_customer, code, message) in sorted(plan.held.items()):
        con.execute(
            """INSERT INTO ops.stripe_rejected_customers VALUES (?, ?, ?, ?, now(), now())
               ON CONFLICT (customer_id) DO UPDATE SET stripe_customer_id = excluded.stripe_customer_id,
                   code = excluded.code, message = excluded.message, checked_at = now()""",
            [customer, stripe_customer, code, message[:500]],
        )
        result.customers_held.append(customer)


def _apply(con, plan: _Plan, result: ReportsResult, started: float) -> None:
    by_reason: dict[tuple, list[str]] = defaultdict(list)
    for identifier, (code, message) in plan.rejected.items():
        if identifier not in plan.delivered:
            by_reason[(code, message)].append(identifier)
    con.execute("BEGIN TRANSACTION")
    try:
        pending = [
            r[0]
            for r in con.execute(
                "SELECT identifier FROM ops.stripe_ledger WHERE status = 'pending' AND identifier IN (SELECT unnest(?::VARCHAR[]))",
                [sorted(plan.delivered)],
            ).fetchall()
        ]
        ledger.mark_sent(con, pending, note=f"delivered earlier ({DUPLICATE})")
        result.delivered += len(pending)
        for (code, message), identifiers in sorted(by_reason.items(), key=lambda kv: str(kv[0])):
            for customer, meter, ps in con.execute(
                """SELECT customer_id, meter, period_start FROM ops.stripe_ledger
                   WHERE identifier IN (SELECT unnest(?::VARCHAR[])) AND kind = 'event'
                     AND status IN ('sent', 'pending') ORDER BY ALL""",
                [identifiers],
            ).fetchall():
                if code is None:
                    result.deferred += 1
                else:
                    result.rejected.append(Rejection(customer, meter, ps, code, message))
            ledger.mark_rejected(con, identifiers, code, message)
        _hold(con, plan, result)
        if plan.reports:
            con.executemany(
                "INSERT OR IGNORE INTO ops.stripe_error_reports VALUES (?, ?, ?, to_timestamp(?), ?, ?, ?, ?, now())",
                plan.reports,
            )
        result.confirmed = con.execute(
            """UPDATE ops.stripe_ledger SET confirmed_at = now()
               WHERE status = 'sent' AND kind = 'event' AND confirmed_at IS NULL AND sent_at < to_timestamp(?)""",
            [started - CONFIRM_AFTER_SECONDS],
        ).fetchone()[0]
        con.execute(
            f"DELETE FROM ops.stripe_error_reports WHERE created < now() - INTERVAL {KEEP_REPORT_IDS_DAYS} DAYS"
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def read_error_reports(client: stripe.StripeClient, con: duckdb.DuckDBPyConnection) -> ReportsResult:
    """Apply Stripe's new meter event error reports to the ledger (module doc)."""
    ensure_tables(con)
    result = ReportsResult()
    started = datetime.now(UTC).timestamp()
    meter_of = dict(con.execute("SELECT stripe_meter_id, meter FROM ops.stripe_meters").fetchall())
    plan = _Plan()
    for report in _new_reports(client, con):
        one, suspects = _Plan(), defaultdict(list)
        count, summary = _plan_report(con, report, meter_of, one, suspects)
        try:
            _check_suspects(client, con, suspects, one, result)
        except stripe.StripeError as err:  # not recorded: read again next time, when Stripe answers
            result.problems.append(
                f"error report {pick(report, 'id')} left for the next read: {err.user_message or err}"
            )
            continue
        one.reports.append(
            (
                pick(report, "id"),
                pick(report, "type"),
                pick(report, "related_object", "id"),
                parse_time(pick(report, "created")),
                count,
                len(one.rejected),
                len(one.delivered),
                summary,
            )
        )
        plan.merge(one)
    _apply(con, plan, result, started)
    result.reports_read = len(plan.reports)
    return result


# -- held customers ------------------------------------------------------------------------------


@dataclass(frozen=True)
class HeldCustomer:
    customer_id: str
    stripe_customer_id: str | None
    code: str
    message: str
    rejected_at: datetime


def held_customers(con: duckdb.DuckDBPyConnection) -> list[HeldCustomer]:
    ensure_tables(con)
    return [
        HeldCustomer(*r)
        for r in con.execute(
            """SELECT customer_id, stripe_customer_id, code, message, rejected_at
               FROM ops.stripe_rejected_customers ORDER BY customer_id"""
        ).fetchall()
    ]


def release_customers(client: stripe.StripeClient, con: duckdb.DuckDBPyConnection) -> list[str]:
    """Held customers that can receive events again (one request per held customer):

    - its Stripe customer exists after all: its held rows are sent again as they are (what Stripe had
      taken is answered as a duplicate);
    - the object sync mapped it to another Stripe customer: its held rows are replaced, since their
      identifiers may already be spent on the old customer, and the planner sends the new one everything
      (what went to the old customer no longer counts, see ledger.py).
    """
    ensure_tables(con)
    released = []
    current = dict(con.execute("SELECT customer_id, stripe_customer_id FROM ops.stripe_customers").fetchall())
    for held in held_customers(con):
        mapped = current.get(held.customer_id)
        remapped = mapped is not None and mapped != held.stripe_customer_id
        exists = False
        if not remapped and held.stripe_customer_id:
            try:
                exists = not getattr(client.v1.customers.retrieve(held.stripe_customer_id), "deleted", False)
            except stripe.InvalidRequestError as err:
                if getattr(err, "http_status", None) != 404:
                    raise
        if not (remapped or exists):
            con.execute(
                "UPDATE ops.stripe_rejected_customers SET checked_at = now() WHERE customer_id = ?", [held.customer_id]
            )
            continue
        con.execute(
            f"""UPDATE ops.stripe_ledger SET rejected_code = NULL
                    {
                ", status = 'replaced', last_error = 'replaced: the customer has a new Stripe customer'"
                if remapped
                else ""
            }
               WHERE customer_id = ? AND status = 'pending' AND rejected_code IN (SELECT unnest(?::VARCHAR[]))""",
            [held.customer_id, sorted(CUSTOMER_CODES)],
        )
        con.execute("DELETE FROM ops.stripe_rejected_customers WHERE customer_id = ?", [held.customer_id])
        released.append(held.customer_id)
    return released

"""Report usage to Stripe through the outbox (`ledger.py`) and the v2 meter event stream.

`report_usage` first writes what changed as pending ledger rows, then sends every pending row
(new ones and any left by an earlier crash) in requests of at most 100 events, on a meter
event session whose token is renewed before its 15 minutes run out. Stripe accepts a meter
event only with a timestamp within 35 days before and 5 minutes after *its* now (the test
clock's time in test mode): a row outside that window is not sent and stays pending, its
reason in `last_error`, until the clock allows it (`deferred`). A row that Stripe rejects for
its time is treated the same. An answer that the identifier was already used counts as
delivered. Every request is retried by `delivery.RetryPolicy` (exponential backoff with full
jitter, honouring `Retry-After` and `stripe-should-retry`); a batch that still fails after that
budget, or that Stripe refuses for good, is parked in the dead-letter table (`deadletter.py`)
with its error, and once Stripe looked down for one batch the rest of this upload is parked
untried. Parked rows stay pending in the ledger under the same identifier; each upload first
re-sends them (as does the `dead_letter_retry` schedule, `retry_dead_letters`), then plans and
sends what is new. Stripe keeps an identifier unique for at least 24 hours only: a row first tried
more than 20 hours ago is not sent again as it is; Stripe's summary of its key decides what is still
missing (`identifier_window.py`).

An answer of the stream is not a delivery: Stripe validates the events afterwards and reports those
it refuses (`error_reports.py`). So an upload reads Stripe's error reports before planning (rows
refused since the last run go back to pending and are planned again), and right after sending.
Customers whose events Stripe refuses (their Stripe customer is gone) are held: nothing is sent for
them until the object sync maps them to a Stripe customer that exists. Before the first rows for a
meter, a new ledger (a lost or rebuilt warehouse) reads what an earlier ledger left in Stripe
(`baseline.py`), so nothing is sent twice.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import duckdb
import stripe

from metering_dagster.billing import (
    deadletter,
    error_reports,
    identifier_window,
    ledger,
)
from metering_dagster.billing.baseline import prepare_baselines
from metering_dagster.billing.error_reports import parse_time
from metering_dagster.billing.objects import stripe_objects_exist, sync_stripe_objects
from metering_dagster.billing.retry import STATS
from metering_dagster.billing.values import decimal_str
from metering_dagster.contract.model import Contract
from metering_dagster.locks import upload_lease

log = logging.getLogger(__name__)

MAX_EVENTS_PER_REQUEST = 100
MAX_PAST_SECONDS = 35 * 24 * 3600
MAX_FUTURE_SECONDS = 5 * 60
SESSION_RENEW_MARGIN_SECONDS = 60


@dataclass
class UploadResult:
    events_written: int = 0  # new ledger rows this run
    events_sent: int = 0  # accepted by Stripe's stream this run (duplicates included)
    duplicates: int = 0  # answered "identifier already used": delivered by an earlier attempt
    requests: int = 0  # meter event stream requests made
    deferred: int = 0  # left pending: timestamp outside Stripe's window at Stripe's time
    failed: int = 0  # rows that failed in this run (all of them parked in the dead-letter table)
    dead_lettered: int = 0  # rows parked in the dead-letter table by this run
    dead_letters_retried: int = 0  # open dead letters this run sent again
    dead_letters_open: int = 0  # open rows in the dead-letter table after this run
    delivery: dict[str, Any] = field(default_factory=dict)  # requests tried, faults met, retries (delivery.STATS)
    withheld_customers: int = 0  # customers skipped because a blocking check withheld them
    pending_left: int = 0  # rows still pending after this run (deferred + failed + withheld + rejected)
    error_reports_read: int = 0  # Stripe's meter event error reports applied this run
    rejected: list[error_reports.Rejection] = field(default_factory=list)  # rows Stripe refused, read this run
    held_customers: list[str] = field(default_factory=list)  # customers whose events Stripe refuses
    awaiting_confirmation: int = 0  # sent rows Stripe may still reject (error_reports.CONFIRM_AFTER_SECONDS)
    baselines: int = 0  # keys started from what Stripe already held (baseline.py)
    # rows first tried too long ago for their identifier to be trusted, settled by Stripe's summary
    untrusted: identifier_window.SettleResult = field(default_factory=identifier_window.SettleResult)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failed == 0 and not self.rejected and not self.held_customers

    def metadata(self) -> dict[str, Any]:
        return {
            "events_written": self.events_written,
            "events_sent": self.events_sent,
            "duplicates": self.duplicates,
            "requests": self.requests,
            "deferred": self.deferred,
            "failed": self.failed,
            "dead_lettered": self.dead_lettered,
            "dead_letters_retried": self.dead_letters_retried,
            "dead_letters_open": self.dead_letters_open,
            **{k: v for k, v in self.delivery.items() if not isinstance(v, dict)},
            "withheld_customers": self.withheld_customers,
            "pending_left": self.pending_left,
            "error_reports_read": self.error_reports_read,
            "rejected_by_stripe": len(self.rejected),
            "held_customers": ", ".join(self.held_customers) or "-",
            "awaiting_confirmation": self.awaiting_confirmation,
            "baselines": self.baselines,
            "delivered_by_summary": self.untrusted.delivered_by_summary,
            "replaced_by_summary": self.untrusted.replaced,
            "first_error": self.errors[0] if self.errors else "-",
        }

    def summary(self) -> str:
        text = (
            f"usage to Stripe: {self.events_sent} events in {self.requests} requests "
            f"({self.events_written} new in the ledger, {self.duplicates} already delivered)"
        )
        if self.withheld_customers:
            text += f"; {self.withheld_customers} customers withheld"
        if self.baselines:
            text += f"; {self.baselines} customer-meter-periods started from what Stripe already held"
        if self.untrusted.keys_checked:
            text += (
                f"; {self.untrusted.delivered_by_summary + self.untrusted.replaced} rows first tried over "
                f"{identifier_window.TRUST_IDENTIFIER_SECONDS // 3600} h ago settled by Stripe's summaries "
                f"({self.untrusted.delivered_by_summary} already held)"
            )
        if self.deferred:
            text += f"; {self.deferred} deferred until Stripe's clock allows them"
        if self.failed:
            text += f"; {self.failed} failed, parked in the dead-letter table: {self.errors[0]}"
        if self.dead_letters_open:
            text += f"; {self.dead_letters_open} open in the dead-letter table"
        if self.rejected:
            first = self.rejected[0]
            text += (
                f"; {len(self.rejected)} refused by Stripe (first {first.customer_id}/{first.meter}: {first.message})"
            )
        if self.held_customers:
            text += f"; Stripe refuses the events of {', '.join(self.held_customers)}: held"
        return text


class _Session:
    """A meter event session, renewed shortly before it expires."""

    def __init__(self, client: stripe.StripeClient, result: UploadResult):
        self.client = client
        self.result = result
        self.token: str | None = None
        self.expires_at = 0.0

    def get(self, force: bool = False) -> str:
        if force or self.token is None or time.time() > self.expires_at - SESSION_RENEW_MARGIN_SECONDS:
            session = self.client.v2.billing.meter_event_session.create()
            self.token = session.authentication_token
            try:
                self.expires_at = parse_time(session.expires_at)
            except (TypeError, ValueError, AttributeError):
                self.expires_at = time.time() + 15 * 60
        return self.token


def _stripe_now(client: stripe.StripeClient, clock_ids: set[str | None]) -> dict[str | None, int]:
    """Stripe's current time per test clock (None = the real clock)."""
    now = {None: int(time.time())}
    for clock_id in clock_ids - {None}:
        now[clock_id] = int(client.v1.test_helpers.test_clocks.retrieve(clock_id).frozen_time)
    return now


def _window_problem(ts: int, now: int) -> str | None:
    if ts < now - MAX_PAST_SECONDS:
        return f"timestamp_too_far_in_past: event time {_iso(ts)} is more than 35 days before Stripe's time {_iso(now)}"
    if ts > now + MAX_FUTURE_SECONDS:
        return f"timestamp_in_future: event time {_iso(ts)} is after Stripe's time {_iso(now)} (+5 min)"
    return None


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _error_text(err: stripe.StripeError) -> str:
    body = getattr(err, "json_body", None) or {}
    detail = body.get("error", {}) if isinstance(body, dict) else {}
    code = getattr(err, "code", None) or detail.get("code") or detail.get("type") or type(err).__name__
    message = detail.get("message") or getattr(err, "user_message", None) or str(err)
    return f"{code}: {message}"


def _is_duplicate(text: str) -> bool:
    return bool(re.search(r"duplicate|already (been )?(used|sent|exists|recorded|processed)", text, re.IGNORECASE))


def _is_time_rejection(text: str) -> bool:
    return bool(re.search(r"timestamp", text, re.IGNORECASE))


def _event(row: ledger.PendingEvent) -> dict[str, Any]:
    return {
        "event_name": row.meter,
        "identifier": row.identifier,
        "payload": {"stripe_customer_id": row.stripe_customer_id, "value": decimal_str(row.value)},
        "timestamp": datetime.fromtimestamp(row.event_timestamp, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
    }


class _StopSending(Exception):
    """Stripe looked down: a batch still failed after the retry budget."""


_TRANSIENT = (stripe.RateLimitError, stripe.APIConnectionError, stripe.APIError)


def _park(con, ids: list[str], text: str, result: UploadResult, retrying: bool) -> None:
    deadletter.park(con, ids, text, retry=retrying)
    ledger.mark_error(con, ids, text, attempted=True)
    result.failed += len(ids)
    result.dead_lettered += 0 if retrying else len(ids)


# Rows Stripe took are marked sent this many at a time (ten full requests): each warehouse write is a commit, a
# disk flush, and one per request cost more than the request. Rows a crash leaves unmarked are sent again under
# their identifiers, and Stripe reports them as duplicates (error_reports.py): delivered, counted once, as for a
# crash right after any request.
MARK_SENT_EVERY = 1000


class _Accepted:
    """Rows Stripe took whose `mark_sent` is still to be written."""

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self.con = con
        self.identifiers: list[str] = []

    def add(self, identifiers: list[str]) -> None:
        self.identifiers += identifiers
        if len(self.identifiers) >= MARK_SENT_EVERY:
            self.write()

    def write(self) -> None:
        if self.identifiers:
            ledger.mark_sent(self.con, self.identifiers)
            self.identifiers = []


def _send(
    client,
    con,
    session: _Session,
    batch: list[ledger.PendingEvent],
    result: UploadResult,
    accepted: _Accepted,
    retrying: bool = False,
) -> None:
    """Send one request; on a rejection of a batch, isolate the event(s) responsible."""
    ids = [r.identifier for r in batch]
    params = {"events": [_event(r) for r in batch]}
    for attempt in (1, 2):
        result.requests += 1
        try:
            client.v2.billing.meter_event_stream.create(params, {"api_key": session.get(force=attempt == 2)})
        except stripe.TemporarySessionExpiredError:
            if attempt == 1:
                continue
            raise
        except (stripe.InvalidRequestError, stripe.IdempotencyError) as err:
            if len(batch) > 1:
                for row in batch:
                    _send(client, con, session, [row], result, accepted, retrying)
                return
            text = _error_text(err)
            if _is_duplicate(text):
                ledger.mark_sent(con, ids, note=f"delivered earlier ({text})")
                result.events_sent += 1
                result.duplicates += 1
            elif _is_time_rejection(text):
                ledger.mark_error(con, ids, text, attempted=True)
                result.deferred += 1
            else:  # refused for good: retrying the same request will not help
                _park(con, ids, text, result, retrying)
                result.errors.append(f"{batch[0].customer_id}/{batch[0].meter}: {text}")
            return
        except stripe.StripeError as err:  # after the retry budget (or told not to retry)
            text = _error_text(err)
            _park(con, ids, text, result, retrying)
            result.errors.append(text)
            if isinstance(err, _TRANSIENT):
                raise _StopSending(text) from err
            return
        accepted.add(ids)
        result.events_sent += len(batch)
        return


def send_pending(
    client: stripe.StripeClient,
    con: duckdb.DuckDBPyConnection,
    *,
    withheld_customers: frozenset[str] = frozenset(),
    result: UploadResult | None = None,
    dead_letters: bool = False,
    stripe_now: dict[str | None, int] | None = None,
) -> UploadResult:
    """Send every pending ledger row (except withheld and held customers') on the meter event stream.

    `dead_letters=False` (the regular upload): rows parked in the dead-letter table are left alone.
    `dead_letters=True` (the dead-letter retry): only those rows are sent.
    """
    result = result or UploadResult()
    stats_before = STATS.as_dict()
    parked = deadletter.open_identifiers(con)
    held = frozenset(h.customer_id for h in error_reports.held_customers(con))
    rows = [
        r
        for r in ledger.pending_events(con, withheld_customers=withheld_customers, held_customers=held)
        if (r.identifier in parked) == dead_letters
    ]
    if dead_letters:
        result.dead_letters_retried += len(rows)
    if not rows:
        _count_left(con, result, stats_before)
        return result
    now = stripe_now or _stripe_now(client, {r.stripe_test_clock_id for r in rows})
    rows = identifier_window.settle_untrusted(
        client, con, rows, now, result.untrusted, withheld_customers=withheld_customers, held_customers=held
    )
    result.errors += [
        f"Stripe's usage could not be read for {u}: not sent until it is" for u in result.untrusted.unreadable
    ]
    result.untrusted.unreadable = []
    sendable = []
    for row in rows:
        problem = (
            "no Stripe customer for this customer: run the Stripe object sync"
            if row.stripe_customer_id is None
            else _window_problem(row.event_timestamp, now[row.stripe_test_clock_id])
        )
        if problem:
            ledger.mark_error(con, [row.identifier], problem, attempted=False)
            result.deferred += 1
        else:
            sendable.append(row)
    session = _Session(client, result)
    # Every row's first try is recorded before the first request, in one write: per batch it was a second
    # warehouse commit beside `mark_sent`'s. A row that a crash leaves unsent thus counts as tried from now,
    # which only makes its identifier distrusted sooner (identifier_window.py), never trusted longer.
    ledger.mark_tried(con, {r.identifier: now[r.stripe_test_clock_id] for r in sendable})
    batches = [sendable[i : i + MAX_EVENTS_PER_REQUEST] for i in range(0, len(sendable), MAX_EVENTS_PER_REQUEST)]
    accepted = _Accepted(con)
    try:
        for n, batch in enumerate(batches):
            try:
                _send(client, con, session, batch, result, accepted, dead_letters)
            except _StopSending as stop:
                rest = [r.identifier for b in batches[n + 1 :] for r in b]
                if rest:
                    _park(con, rest, f"not tried: Stripe unavailable ({stop})", result, dead_letters)
                break
    finally:
        accepted.write()
    _count_left(con, result, stats_before)
    return result


def _tally(con: duckdb.DuckDBPyConnection, result: UploadResult) -> None:
    """What is left: open dead letters, pending rows, rows Stripe may still reject."""
    deadletter.resolve_delivered(con)
    result.dead_letters_open = len(deadletter.open_identifiers(con))
    result.pending_left, result.awaiting_confirmation = con.execute(
        """SELECT count(*) FILTER (WHERE status = 'pending'),
                  count(*) FILTER (WHERE status = 'sent' AND kind = 'event' AND confirmed_at IS NULL)
           FROM ops.stripe_ledger"""
    ).fetchone()


def _count_left(con: duckdb.DuckDBPyConnection, result: UploadResult, stats_before: dict[str, Any]) -> None:
    _tally(con, result)
    after = STATS.as_dict()
    for k in ("requests_tried", "faults_met", "retries", "gave_up"):
        result.delivery[k] = result.delivery.get(k, 0) + after[k] - stats_before[k]


def _read_back(client: stripe.StripeClient, con: duckdb.DuckDBPyConnection, result: UploadResult) -> None:
    """Apply Stripe's error reports; name the refused rows and the held customers."""
    read = error_reports.read_error_reports(client, con)
    result.error_reports_read += read.reports_read
    result.rejected += read.rejected
    result.deferred += read.deferred
    result.errors += [f"{r.customer_id}/{r.meter}: {r.message}" for r in read.rejected] + read.problems
    result.held_customers = [h.customer_id for h in error_reports.held_customers(con)]


def _customers_now(client: stripe.StripeClient, con: duckdb.DuckDBPyConnection) -> dict[str | None, int]:
    clocks = {r[0] for r in con.execute("SELECT DISTINCT stripe_test_clock_id FROM ops.stripe_customers").fetchall()}
    return _stripe_now(client, clocks)


def retry_dead_letters(client: stripe.StripeClient, con: duckdb.DuckDBPyConnection) -> UploadResult:
    """Re-send the open dead-letter rows with their original identifiers (what the schedule runs)."""
    ledger.ensure_ledger(con)
    with upload_lease(con, holder="dead-letter retry"):
        deadletter.resolve_delivered(con)
        result = send_pending(client, con, dead_letters=True)
        if result.requests:
            _read_back(client, con, result)
            _tally(con, result)
    log.info(result.summary())
    return result


def report_usage(
    client: stripe.StripeClient,
    con: duckdb.DuckDBPyConnection,
    contract: Contract,
    *,
    withheld_customers: frozenset[str] = frozenset(),
) -> UploadResult:
    """Bring Stripe's meters to `marts.fct_usage_by_period`: Stripe's reports read back, dead letters
    re-sent, baselines read where an earlier ledger sent usage, then the ledger first, then send.

    Creates the Stripe objects first if no sync has recorded them yet. Withheld customers get no
    new ledger rows and none of their pending rows are sent.
    """
    withheld = frozenset(withheld_customers)
    if not stripe_objects_exist(con, contract):
        sync_stripe_objects(client, contract, con)
    result = UploadResult(withheld_customers=len(withheld & {c.id for c in contract.customers}))
    with upload_lease(con, holder="usage upload"):
        ledger.ensure_ledger(con)
        released = error_reports.release_customers(client, con)
        if released:
            log.info(f"Stripe takes events again for {', '.join(released)}: their held rows are sent")
        _read_back(client, con, result)
        now = _customers_now(client, con)
        sent_before = result.events_sent  # re-sent dead letters are read back too
        if deadletter.open_identifiers(con):
            send_pending(client, con, withheld_customers=withheld, result=result, dead_letters=True, stripe_now=now)
        baselines = prepare_baselines(client, con, now)
        result.baselines = baselines.baselines
        result.errors += [
            f"Stripe's usage could not be read for {u}: not sent until it is" for u in baselines.unreadable
        ]
        result.events_written = len(ledger.write_pending(con, contract, withheld_customers=withheld))
        send_pending(client, con, withheld_customers=withheld, result=result, stripe_now=now)
        if result.events_sent > sent_before:
            _read_back(client, con, result)
            _tally(con, result)
    log.info(result.summary())
    return result

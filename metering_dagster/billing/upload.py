"""Report usage to Stripe through the outbox (`ledger.py`) and the v2 meter event stream.

`report_usage` first writes what changed as pending ledger rows, then sends every pending row
(new ones and any left by an earlier crash) in requests of at most 100 events, on a meter
event session whose token is renewed before its 15 minutes run out. Stripe accepts a meter
event only with a timestamp within 35 days before and 5 minutes after *its* now (the test
clock's time in test mode): a row outside that window is not sent and stays pending, its
reason in `last_error`, until the clock allows it (`deferred`). A row that Stripe rejects for
its time is treated the same. An answer that the identifier was already used counts as
delivered. The SDK retries 409/429/5xx and connection errors with exponential backoff and
jitter, honouring `Retry-After` and `stripe-should-retry`; what still fails stays pending
with its error and is sent again by the next run (issue 5 adds the dead-letter table).
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import duckdb
import stripe

from metering_dagster.billing import ledger
from metering_dagster.billing.objects import stripe_objects_exist, sync_stripe_objects
from metering_dagster.billing.values import decimal_str
from metering_dagster.contract.model import Contract

log = logging.getLogger(__name__)

MAX_EVENTS_PER_REQUEST = 100
MAX_PAST_SECONDS = 35 * 24 * 3600
MAX_FUTURE_SECONDS = 5 * 60
SESSION_RENEW_MARGIN_SECONDS = 60


@dataclass
class UploadResult:
    events_written: int = 0  # new ledger rows this run
    events_sent: int = 0  # accepted by Stripe this run (duplicates included)
    duplicates: int = 0  # answered "identifier already used": delivered by an earlier attempt
    requests: int = 0  # meter event stream requests made
    deferred: int = 0  # left pending: timestamp outside Stripe's window at Stripe's time
    failed: int = 0  # left pending after an error (sent again next run)
    withheld_customers: int = 0  # customers skipped because a blocking check withheld them
    pending_left: int = 0  # rows still pending after this run (deferred + failed + withheld)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failed == 0

    def metadata(self) -> dict[str, Any]:
        return {
            "events_written": self.events_written,
            "events_sent": self.events_sent,
            "duplicates": self.duplicates,
            "requests": self.requests,
            "deferred": self.deferred,
            "failed": self.failed,
            "withheld_customers": self.withheld_customers,
            "pending_left": self.pending_left,
            "first_error": self.errors[0] if self.errors else "-",
        }

    def summary(self) -> str:
        text = (
            f"usage to Stripe: {self.events_sent} events in {self.requests} requests "
            f"({self.events_written} new in the ledger, {self.duplicates} already delivered)"
        )
        if self.withheld_customers:
            text += f"; {self.withheld_customers} customers withheld"
        if self.deferred:
            text += f"; {self.deferred} deferred until Stripe's clock allows them"
        if self.failed:
            text += f"; {self.failed} failed and stay pending: {self.errors[0]}"
        return text


def _parse_time(value: Any) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, datetime):
        return value.timestamp()
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


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
                self.expires_at = _parse_time(session.expires_at)
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
        return (
            f"timestamp_too_far_in_past: event time {_iso(ts)} is more than 35 days before Stripe's time {_iso(now)}"
        )
    if ts > now + MAX_FUTURE_SECONDS:
        return f"timestamp_in_future: event time {_iso(ts)} is after Stripe's time {_iso(now)} (+5 min)"
    return None


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _error_text(err: stripe.StripeError) -> str:
    body = getattr(err, "json_body", None) or {}
    detail = body.get("error", {}) if isinstance(body, dict) else {}
    code = getattr(err, "code", None) or detail.get("code") or detail.get("type") or type(err).__name__
    message = detail.get("message") or getattr(err, "user_message", None) or str(err)
    return f"{code}: {message}"


def _is_duplicate(text: str) -> bool:
    return bool(re.search(r"duplicate|already (been )?(used|sent|exists|recorded|processed)", text, re.I))


def _is_time_rejection(text: str) -> bool:
    return bool(re.search(r"timestamp", text, re.I))


def _event(row: ledger.PendingEvent) -> dict[str, Any]:
    return {
        "event_name": row.meter,
        "identifier": row.identifier,
        "payload": {"stripe_customer_id": row.stripe_customer_id, "value": decimal_str(row.value)},
        "timestamp": datetime.fromtimestamp(row.event_timestamp, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
    }


class _StopSending(Exception):
    pass


def _send(client, con, session: _Session, batch: list[ledger.PendingEvent], result: UploadResult) -> None:
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
                    _send(client, con, session, [row], result)
                return
            text = _error_text(err)
            if _is_duplicate(text):
                ledger.mark_sent(con, ids, note=f"delivered earlier ({text})")
                result.events_sent += 1
                result.duplicates += 1
            elif _is_time_rejection(text):
                ledger.mark_error(con, ids, text, attempted=True)
                result.deferred += 1
            else:
                ledger.mark_error(con, ids, text, attempted=True)
                result.failed += 1
                result.errors.append(f"{batch[0].customer_id}/{batch[0].meter}: {text}")
            return
        except stripe.StripeError as err:  # after the SDK's retries: stop, keep everything pending
            text = _error_text(err)
            ledger.mark_error(con, ids, text, attempted=True)
            result.failed += len(batch)
            result.errors.append(text)
            raise _StopSending from err
        ledger.mark_sent(con, ids)
        result.events_sent += len(batch)
        return


def send_pending(
    client: stripe.StripeClient,
    con: duckdb.DuckDBPyConnection,
    *,
    withheld_customers: frozenset[str] = frozenset(),
    result: UploadResult | None = None,
) -> UploadResult:
    """Send every pending ledger row (except withheld customers') on the meter event stream."""
    result = result or UploadResult()
    rows = ledger.pending_events(con, withheld_customers=withheld_customers)
    now = _stripe_now(client, {r.stripe_test_clock_id for r in rows})
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
    try:
        for i in range(0, len(sendable), MAX_EVENTS_PER_REQUEST):
            _send(client, con, session, sendable[i : i + MAX_EVENTS_PER_REQUEST], result)
    except _StopSending:
        unsent = len(sendable) - i - MAX_EVENTS_PER_REQUEST
        result.failed += max(unsent, 0)
    result.pending_left = con.execute("SELECT count(*) FROM ops.stripe_ledger WHERE status = 'pending'").fetchone()[0]
    return result


def report_usage(
    client: stripe.StripeClient,
    con: duckdb.DuckDBPyConnection,
    contract: Contract,
    *,
    withheld_customers: frozenset[str] = frozenset(),
) -> UploadResult:
    """Bring Stripe's meters to `marts.fct_usage_by_period`: ledger first, then send.

    Creates the Stripe objects first if no sync has recorded them yet. Withheld customers get no
    new ledger rows and none of their pending rows are sent.
    """
    withheld = frozenset(withheld_customers)
    if not stripe_objects_exist(con, contract):
        sync_stripe_objects(client, contract, con)
    result = UploadResult(withheld_customers=len(withheld & {c.id for c in contract.customers}))
    result.events_written = len(ledger.write_pending(con, contract, withheld_customers=withheld))
    send_pending(client, con, withheld_customers=withheld, result=result)
    log.info(result.summary())
    return result

"""Meter events: v1 and v2 (synchronous validation), the v2 session + high-throughput stream (asynchronous
validation: invalid events are reported as v2 core events, never silently dropped), and cancellations."""

from __future__ import annotations

import json
import threading
import time
import uuid
from decimal import Decimal, InvalidOperation

from ..errors import StripeError, invalid
from ..params import Params
from ..storage import new_id
from ..timeutil import iso, parse_timestamp
from . import alerts

PAST_LIMIT = 35 * 86400
FUTURE_LIMIT = 5 * 60
CANCEL_WINDOW = 24 * 3600
MAX_DIGITS = 15
SESSION_TTL = 15 * 60
STREAM_MAX = 100


class EventRejected(Exception):
    def __init__(self, code: str, message: str, meter: str | None = None):
        super().__init__(message)
        self.code, self.message, self.meter = code, message, meter


class Ingest:
    """Validates meter events and turns them into rows; caches meters and customers for one request."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.meters: dict = {}
        self.customers: dict = {}

    def meter(self, event_name: str) -> dict:
        if event_name not in self.meters:
            found = self.ctx.tx.find("billing.meter", event_name=event_name)
            active = [m for m in found if m["status"] == "active"]
            self.meters[event_name] = (active or found or [None])[0]
        m = self.meters[event_name]
        if m is None:
            raise EventRejected("no_meter", f"No active meter was found matching event_name '{event_name}'.")
        if m["status"] != "active":
            raise EventRejected(
                "archived_meter", f"The meter {m['id']} for event_name '{event_name}' is inactive.", m["id"]
            )
        return m

    def customer_now(self, cid: str):
        if cid not in self.customers:
            cust = self.ctx.tx.get(cid, "customer")
            self.customers[cid] = None if cust is None else self.ctx.customer_now(cust)
        return self.customers[cid]

    def row(self, event_name, payload, identifier, timestamp) -> tuple:
        if not event_name:
            raise EventRejected("no_meter", "event_name is required.")
        meter = self.meter(str(event_name))
        if not isinstance(payload, dict):
            raise EventRejected("meter_event_no_customer_defined", "payload must be an object.", meter["id"])
        ckey = meter["customer_mapping"]["event_payload_key"]
        cid = payload.get(ckey)
        if not cid:
            raise EventRejected(
                "meter_event_no_customer_defined", f"Customer mapping key {ckey} not found in payload.", meter["id"]
            )
        now = self.customer_now(str(cid))
        if now is None:
            raise EventRejected("meter_event_customer_not_found", f"No such customer: '{cid}'", meter["id"])
        ts = now if timestamp in (None, "") else parse_timestamp(timestamp, "timestamp")
        if ts < now - PAST_LIMIT:
            raise EventRejected(
                "timestamp_too_far_in_past",
                f"Timestamp {ts} is more than 35 days in the past (now {now}).",
                meter["id"],
            )
        if ts > now + FUTURE_LIMIT:
            raise EventRejected(
                "timestamp_in_future", f"Timestamp {ts} is more than 5 minutes in the future (now {now}).", meter["id"]
            )
        vkey = meter["value_settings"]["event_payload_key"]
        raw = payload.get(vkey)
        if raw is None or raw == "":
            if meter["default_aggregation"]["formula"] != "count":
                raise EventRejected(
                    "meter_event_value_not_found", f"Value key {vkey} not found in payload.", meter["id"]
                )
            value = Decimal(1)
        else:
            try:
                value = Decimal(str(raw))
            except (InvalidOperation, ValueError):
                value = None
            if value is None or not value.is_finite() or isinstance(raw, bool):
                raise EventRejected("meter_event_invalid_value", f"Value '{raw}' is not a number.", meter["id"])
            digits = value.as_tuple().digits
            significant = len(digits) - next((i for i, d in enumerate(digits) if d), len(digits))
            if significant > MAX_DIGITS:
                raise EventRejected(
                    "meter_event_value_too_many_digits",
                    f"Value '{raw}' has more than {MAX_DIGITS} significant digits.",
                    meter["id"],
                )
        identifier = str(identifier) if identifier not in (None, "") else str(uuid.uuid4())
        stored_payload = {str(k): str(v) for k, v in payload.items()}
        return (
            identifier,
            meter["event_name"],
            meter["id"],
            str(cid),
            str(value),
            int(ts),
            now,
            self.ctx.now(),
            json.dumps(stored_payload),
        )


INSERT = (
    "INSERT INTO meter_events (identifier, event_name, meter, customer, value, ts, received, created, payload) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _duplicate(identifier: str) -> StripeError:
    return StripeError(
        400, f"An event already exists with identifier {identifier}.", should_retry=False, param="identifier"
    )


def _insert_one(ctx, event_name, payload, identifier, timestamp) -> tuple:
    try:
        row = Ingest(ctx).row(event_name, payload, identifier, timestamp)
    except EventRejected as e:
        raise StripeError(400, e.message, code=e.code, should_retry=False) from None
    if _taken(ctx, Ingest(ctx), [row[0]]):
        raise _duplicate(row[0])
    ctx.tx.conn.execute(INSERT, row)
    alerts.evaluate(ctx, {(row[2], row[3])})
    return row


def _taken(ctx, ingest: Ingest, identifiers: list[str]) -> set[str]:
    """The identifiers still taken by an earlier event. With an identifier window, an event received longer
    ago than the window (on its customer's clock, as cancellations are timed) gives its identifier up: it
    still counts, under `<identifier>#released-<seq>`, and the identifier can be used again."""
    if not identifiers:
        return set()
    found = ctx.tx.conn.execute(
        f"SELECT identifier, seq, customer, received FROM meter_events WHERE identifier IN "
        f"({', '.join('?' * len(identifiers))})",
        identifiers,
    ).fetchall()
    window = ctx.settings.identifier_window_seconds
    if window is None:
        return {r[0] for r in found}
    taken = set()
    for identifier, seq, customer, received in found:
        now = ingest.customer_now(customer)
        if now is not None and now - received >= window:
            ctx.tx.conn.execute(
                "UPDATE meter_events SET identifier = ? WHERE seq = ?", (f"{identifier}#released-{seq}", seq)
            )
        else:
            taken.add(identifier)
    return taken


def create_v1(ctx):
    p = ctx.params
    row = _insert_one(
        ctx,
        p.str("event_name", required=True),
        p.dict("payload", required=True),
        p.str("identifier"),
        p.int("timestamp"),
    )
    return 200, {
        "object": "billing.meter_event",
        "created": row[7],
        "event_name": row[1],
        "identifier": row[0],
        "livemode": False,
        "payload": json.loads(row[8]),
        "timestamp": row[5],
    }


def create_v2(ctx):
    p = ctx.params
    row = _insert_one(
        ctx,
        p.str("event_name", required=True),
        p.dict("payload", required=True),
        p.str("identifier"),
        p.raw("timestamp"),
    )
    return 200, {
        "object": "v2.billing.meter_event",
        "created": iso(ctx.wall),
        "event_name": row[1],
        "identifier": row[0],
        "livemode": False,
        "payload": json.loads(row[8]),
        "timestamp": iso(row[5]),
    }


# -- sessions and the stream -------------------------------------------------------------------------
_session_cache: dict = {}
_session_lock = threading.Lock()


def create_session(ctx):
    token = "mes_tok_" + uuid.uuid4().hex + uuid.uuid4().hex
    expires = ctx.wall + SESSION_TTL
    ctx.tx.insert({"id": token, "object": "_meter_event_session", "expires_at": expires})
    return 200, {
        "id": new_id("mes"),
        "object": "v2.billing.meter_event_session",
        "authentication_token": token,
        "created": iso(ctx.wall),
        "expires_at": iso(expires),
        "livemode": False,
    }


def session_valid(store, token: str) -> bool:
    now = time.time()
    with _session_lock:
        exp = _session_cache.get((store.path, token))
    if exp is None:
        with store.transaction(write=False) as tx:
            obj = tx.get(token, "_meter_event_session")
        if obj is None:
            return False
        exp = obj["expires_at"]
        with _session_lock:
            _session_cache[(store.path, token)] = exp
    return now < exp


def stream(ctx):
    events = ctx.params.raw("events")
    if not isinstance(events, list) or not events:
        raise invalid("`events` must be a non-empty array.", param="events")
    if len(events) > STREAM_MAX:
        raise invalid(f"At most {STREAM_MAX} events can be sent in one request (got {len(events)}).", param="events")
    ingest, rows, errors = Ingest(ctx), [], []
    for ev in events:
        ev = ev if isinstance(ev, dict) else {}
        try:
            rows.append(ingest.row(ev.get("event_name"), ev.get("payload"), ev.get("identifier"), ev.get("timestamp")))
        except (EventRejected, StripeError) as e:
            code = getattr(e, "code", None) or "meter_event_invalid_value"
            errors.append((getattr(e, "meter", None), ev.get("event_name"), ev.get("identifier"), code, e.message))
    if rows:
        taken = _taken(ctx, ingest, [r[0] for r in rows])
        fresh, seen = [], set()
        for r in rows:
            if r[0] in taken or r[0] in seen:
                errors.append(
                    (r[2], r[1], r[0], "duplicate_meter_event", f"An event already exists with identifier {r[0]}.")
                )
            else:
                seen.add(r[0])
                fresh.append(r)
        ctx.tx.conn.executemany(INSERT, fresh)
        alerts.evaluate(ctx, {(r[2], r[3]) for r in fresh})
    if errors:
        ctx.tx.conn.executemany(
            "INSERT INTO meter_event_errors (meter, event_name, identifier, code, message, created) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(*e, ctx.now()) for e in errors],
        )
    return 202, {}


# -- cancellations ---------------------------------------------------------------------------------
def _cancel(ctx, event_name: str, identifier: str):
    row = ctx.tx.conn.execute(
        "SELECT seq, received, canceled_at, customer, event_name FROM meter_events WHERE identifier = ?", (identifier,)
    ).fetchone()
    if row is None or row[4] != event_name:
        raise StripeError(
            400,
            f"No meter event with identifier {identifier} and event_name {event_name} exists.",
            param="cancel[identifier]",
            code="resource_missing",
            should_retry=False,
        )
    if row[2] is not None:
        raise StripeError(
            400,
            f"The meter event with identifier {identifier} is already canceled.",
            param="cancel[identifier]",
            should_retry=False,
        )
    cust = ctx.tx.get(row[3], "customer")
    now = ctx.customer_now(cust)
    if now - row[1] > CANCEL_WINDOW:
        raise StripeError(
            400,
            f"The meter event with identifier {identifier} was received more than 24 hours "
            "ago and can no longer be canceled.",
            param="cancel[identifier]",
            should_retry=False,
        )
    ctx.tx.conn.execute("UPDATE meter_events SET canceled_at = ? WHERE seq = ?", (now, row[0]))


def _adjustment_params(ctx):
    p = ctx.params
    event_name = p.str("event_name", required=True)
    p.str("type", default="cancel", choices=("cancel",))
    identifier = Params(p.dict("cancel", required=True)).str("identifier", required=True)
    _cancel(ctx, event_name, identifier)
    return event_name, identifier


def adjust_v1(ctx):
    event_name, identifier = _adjustment_params(ctx)
    return 200, {
        "object": "billing.meter_event_adjustment",
        "cancel": {"identifier": identifier},
        "event_name": event_name,
        "livemode": False,
        "status": "complete",
        "type": "cancel",
    }


def adjust_v2(ctx):
    event_name, identifier = _adjustment_params(ctx)
    return 200, {
        "id": new_id("mea"),
        "object": "v2.billing.meter_event_adjustment",
        "cancel": {"identifier": identifier},
        "created": iso(ctx.wall),
        "event_name": event_name,
        "livemode": False,
        "status": "complete",
        "type": "cancel",
    }


def register(r):
    r.add("POST", "/v1/billing/meter_events", create_v1)
    r.add("POST", "/v1/billing/meter_event_adjustments", adjust_v1)
    r.add("POST", "/v2/billing/meter_events", create_v2)
    r.add("POST", "/v2/billing/meter_event_adjustments", adjust_v2)
    r.add("POST", "/v2/billing/meter_event_session", create_session)
    r.add("POST", "/v2/billing/meter_event_stream", stream, auth="session")

"""Fixtures: a real DuckDB warehouse with `marts.fct_budget_status` rows the test writes itself (the mart's
columns, as the dbt model builds them), and a real HTTP receiver on 127.0.0.1 that checks every Standard Webhooks
signature with its own implementation of the specification."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import duckdb
import pytest

from metering_dagster.warehouse import connect

SECRET = "whsec_" + base64.b64encode(b"budget-alerts-test-key-0123456789").decode()
OCT = datetime(2026, 10, 1, tzinfo=UTC)
NOV = datetime(2026, 11, 1, tzinfo=UTC)
DEC = datetime(2026, 12, 1, tzinfo=UTC)
AS_OF = datetime(2026, 10, 20, 12, 0, tzinfo=UTC)

STATUS_DDL = """
create schema if not exists marts;
create or replace table marts.fct_budget_status (
    customer_id varchar, budget_key varchar, budget_kind varchar, meter varchar, unit varchar,
    period_start timestamptz, period_end timestamptz, used decimal(38, 12), limit_value decimal(38, 12),
    percent decimal(38, 2), thresholds_reached integer[], highest_threshold_reached integer, on_exceed varchar,
    access varchar, is_current boolean, stripe_now timestamptz, as_of timestamptz
)
"""


@dataclass(frozen=True)
class Status:
    """One row of marts.fct_budget_status, derived the way the mart derives it (interface: thresholds_reached,
    access)."""

    customer_id: str
    budget_key: str
    used: str | None  # None: a line of the period too large to price (past every threshold)
    limit: str
    period_start: datetime = OCT
    period_end: datetime = NOV
    thresholds: tuple[int, ...] = (80, 100)
    on_exceed: str = "notify"
    kind: str = "spend"
    meter: str | None = None
    unit: str = "cents"
    is_current: bool = True
    as_of: datetime = AS_OF

    def row(self) -> list:
        used = None if self.used is None else Decimal(self.used)
        limit = Decimal(self.limit)
        reached = [t for t in self.thresholds if used is None or used >= limit * t / 100]
        return [
            self.customer_id,
            self.budget_key,
            self.kind,
            self.meter,
            self.unit,
            self.period_start,
            self.period_end,
            used,
            limit,
            (used * 100 / limit).quantize(Decimal("0.01")) if limit and used is not None else None,
            reached,
            max(reached, default=None),
            self.on_exceed,
            "block" if self.on_exceed == "block" and (used is None or used >= limit) else "allow",
            self.is_current,
            self.as_of,
            self.as_of,
        ]


def set_status(con: duckdb.DuckDBPyConnection, *rows: Status) -> None:
    """Replace the mart's rows, as a dbt build does."""
    con.execute(STATUS_DDL)
    if rows:
        con.executemany(f"insert into marts.fct_budget_status values ({', '.join('?' * 17)})", [r.row() for r in rows])


@pytest.fixture
def warehouse(tmp_path, monkeypatch) -> Iterator[duckdb.DuckDBPyConnection]:
    for name in ("METERING_WEBHOOK_URL", "METERING_WEBHOOK_SECRET"):
        monkeypatch.delenv(name, raising=False)
    con = connect(tmp_path / "warehouse.duckdb")
    try:
        yield con
    finally:
        con.close()


def expected_signature(secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
    """The receiver's own Standard Webhooks check: HMAC-SHA256 keyed with the base64 secret after `whsec_`."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, msg_id.encode() + b"." + timestamp.encode() + b"." + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


@dataclass
class Received:
    msg_id: str
    timestamp: str
    body: bytes
    signature_valid: bool
    answered: int

    @property
    def payload(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    """What a Standard Webhooks receiver does: verify the signature and the timestamp, answer, and (as the
    specification asks of receivers) act once per webhook-id."""

    secret: str = SECRET
    fail_next: int = 0  # answer the next n requests with `fail_status`
    fail_status: int = 500
    refuse_ids: set[str] = field(default_factory=set)  # always answer 500 for these ids
    delay_seconds: float = 0  # answer this late (past the sender's timeout: no answer)
    received: list[Received] = field(default_factory=list)
    url: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, msg_id: str, timestamp: str, signatures: str, body: bytes) -> int:
        wanted = expected_signature(self.secret, msg_id, timestamp, body)
        valid = (
            any(
                version == "v1" and hmac.compare_digest(value, wanted)
                for version, _, value in (s.partition(",") for s in signatures.split())
            )
            and abs(time.time() - int(timestamp)) <= 300
        )
        with self._lock:
            if not valid:
                status = 401
            elif self.fail_next > 0:
                self.fail_next -= 1
                status = self.fail_status
            elif msg_id in self.refuse_ids:
                status = 500
            else:
                status = 204
            self.received.append(Received(msg_id, timestamp, body, valid, status))
        return status

    @property
    def accepted(self) -> list[Received]:
        return [r for r in self.received if 200 <= r.answered < 300]

    def acted_on(self) -> list[str]:
        """The distinct webhook-ids accepted, in order: what a deduplicating receiver acts on."""
        return list(dict.fromkeys(r.msg_id for r in self.accepted))


def start_receiver(receiver: Receiver) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            time.sleep(receiver.delay_seconds)
            status = receiver.answer(
                self.headers.get("webhook-id", ""),
                self.headers.get("webhook-timestamp", "0"),
                self.headers.get("webhook-signature", ""),
                body,
            )
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/budgets"
    return server


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    server = start_receiver(receiver)
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()

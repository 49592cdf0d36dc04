"""The entitlements API's tests: a published analysts' copy built with the marts' columns, the real server on a
free port (uvicorn in a thread) and real HTTP (urllib)."""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
import uvicorn

from metering_dagster.serving.api import create_app
from metering_dagster.settings import Settings

TOKEN = "tok-" + "s3cret-entitlements-token"
PERIOD = (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
EARLIER = (datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC))

# The columns of marts.fct_entitlements and marts.fct_budget_status (docs: the budgets interface).
_DDL = """
create schema marts;
create table marts.fct_entitlements (
    customer_id varchar, access varchar, reasons varchar[], as_of timestamptz, stripe_now timestamptz,
    fail_mode varchar, max_staleness_seconds bigint
);
create table marts.fct_budget_status (
    customer_id varchar, budget_key varchar, budget_kind varchar, meter varchar, unit varchar,
    period_start timestamptz, period_end timestamptz, used decimal(38, 12), limit_value decimal(38, 12),
    percent decimal(38, 2), thresholds_reached integer[], highest_threshold_reached integer, on_exceed varchar,
    access varchar, is_current boolean, stripe_now timestamptz, as_of timestamptz
);
"""

# customer -> (access, reasons); budgets: (customer, key, kind, meter, unit, used, limit, percent, on_exceed, period)
CUSTOMERS = {
    "cus_acme": ("allow", []),
    "cus_globex": ("block", ["api_call_cap: 25 of 20 call (125%)"]),
    "org/initech": ("allow", []),
}
BUDGETS = [
    ("cus_acme", "monthly_spend", "spend", None, "cents", "4100.000000000000", "5000", "82.00", "notify", PERIOD),
    ("cus_acme", "monthly_spend", "spend", None, "cents", "9999", "5000", "199.98", "notify", EARLIER),
    ("cus_acme", "gpu_cap", "quantity", "gpu_seconds", "second", "0.000000000001", "0", None, "notify", PERIOD),
    ("cus_globex", "api_call_cap", "quantity", "api_calls", "call", "25", "20", "125.00", "block", PERIOD),
    (
        "cus_globex",
        "monthly_spend",
        "spend",
        None,
        "cents",
        "12345678901234567890.5",
        "5000",
        "246913578024691357.81",
        "notify",
        PERIOD,
    ),
]


def publish(state: Path, *, as_of: datetime, fail_mode: str = "open", max_staleness: int = 900, customers=None):
    """Write analytics.duckdb as a run publishes it: under a temporary name, then renamed into place."""
    customers = CUSTOMERS if customers is None else customers
    state.mkdir(parents=True, exist_ok=True)
    tmp = state / "analytics.duckdb.tmp"
    tmp.unlink(missing_ok=True)
    con = duckdb.connect(str(tmp))
    con.execute(_DDL)
    stripe_now = datetime(2026, 11, 15, tzinfo=UTC)
    for customer, (access, reasons) in customers.items():
        con.execute(
            "insert into marts.fct_entitlements values (?, ?, ?, ?, ?, ?, ?)",
            [customer, access, reasons, as_of, stripe_now, fail_mode, max_staleness],
        )
    for customer, key, kind, meter, unit, used, limit, percent, on_exceed, (start, end) in BUDGETS:
        if customer in customers:
            con.execute(
                "insert into marts.fct_budget_status values (?, ?, ?, ?, ?, ?, ?, ?::decimal(38, 12),"
                " ?::decimal(38, 12), ?::decimal(38, 2), [], null, ?, 'allow', ?, ?, ?)",
                [customer, key, kind, meter, unit, start, end, used, limit, percent, on_exceed, start == PERIOD[0]]
                + [stripe_now, as_of],
            )
    con.close()
    os.replace(tmp, state / "analytics.duckdb")


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: dict


class Api:
    def __init__(self, base: str):
        self.base = base

    def get(
        self, path: str, token: str | None = TOKEN, authorization: str | None = None, method: str = "GET"
    ) -> Answer:
        """GET `path` (sent as written: no normalization of `..` or escapes); every answer is checked for the
        token, whatever was asked."""
        request = urllib.request.Request(self.base + path, method=method)
        if authorization is not None:
            request.add_header("Authorization", authorization)
        elif token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status, headers, raw = response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            status, headers, raw = error.code, dict(error.headers), error.read()
        assert TOKEN not in raw.decode() and TOKEN not in json.dumps(headers)
        assert headers["content-type"] == "application/json"
        return Answer(status, {k.lower(): v for k, v in headers.items()}, json.loads(raw))


def run_server(app) -> tuple[uvicorn.Server, threading.Thread, str]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, thread, f"http://127.0.0.1:{port}"


@pytest.fixture
def state(tmp_path) -> Path:
    path = tmp_path / "state"
    path.mkdir()
    return path


@pytest.fixture
def api(state, tmp_path) -> Iterator[Api]:
    settings = Settings(state_dir=state, raw_dir=tmp_path / "raw", contract_path=tmp_path / "metering.yml")
    server, thread, base = run_server(create_app(settings, TOKEN))
    yield Api(base)
    server.should_exit = True
    thread.join(timeout=10)


def fresh() -> datetime:
    return datetime.now(UTC) - timedelta(seconds=5)

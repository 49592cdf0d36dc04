"""The usage console's tests on the demo's data: one `metering demo` (October invoiced and final at Stripe, early
November usage past two budgets) in a folder of its own, customer tokens made as `metering tokens create` makes
them, and `metering serve`'s app on a free port, spoken to over real HTTP (urllib: no normalization of paths)."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import pytest

from metering_dagster.serving.api import create_app
from metering_dagster.settings import Settings
from tests.conftest import DEMO_DIR
from tests.periods.test_period_close import metering
from tests.serving.conftest import run_server

ADMIN_TOKEN = "tok-" + "console-admin-token-0123456789"
OCTOBER, NOVEMBER = "2026-10-01T00:00:00Z", "2026-11-01T00:00:00Z"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


@dataclass
class ConsoleDemo:
    base: str
    state: Path
    settings: Settings
    customer_tokens: dict[str, str]  # customer id -> its console token

    def get(self, path: str, token: str | None = ADMIN_TOKEN, headers: dict[str, str] | None = None) -> Answer:
        request = urllib.request.Request(self.base + path, headers=headers or {})
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return Answer(response.status, {k.lower(): v for k, v in response.headers.items()}, response.read())
        except urllib.error.HTTPError as error:
            return Answer(error.code, {k.lower(): v for k, v in error.headers.items()}, error.read())

    def marts(self, sql: str, params=()) -> list[tuple]:
        """A query on the published analysts' copy, opened by the test itself."""
        con = duckdb.connect(str(self.settings.analytics_path), read_only=True)
        try:
            return con.execute(sql, list(params)).fetchall()
        finally:
            con.close()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


no_redirect = urllib.request.build_opener(_NoRedirect)


@pytest.fixture(scope="session")
def console_demo(tmp_path_factory, dbt_manifest) -> Iterator[ConsoleDemo]:
    state = tmp_path_factory.mktemp("console") / "state"
    (state / "dagster_home").mkdir(parents=True)
    env = os.environ | {"METERING_STATE_DIR": str(state), "DAGSTER_HOME": str(state / "dagster_home")}
    metering("demo", env=env)
    tokens = {}
    for customer in ("cus_acme", "cus_globex"):
        made = metering(
            "tokens", "create", "--customer", customer, env=env | {"METERING_CONTRACT": str(DEMO_DIR / "metering.yml")}
        )
        tokens[customer] = made.stdout.strip()
    settings = Settings(state_dir=state, raw_dir=state / "raw", contract_path=DEMO_DIR / "metering.yml")
    server, thread, base = run_server(create_app(settings, ADMIN_TOKEN))
    yield ConsoleDemo(base, state, settings, tokens)
    server.should_exit = True
    thread.join(timeout=10)


@dataclass
class Shown:
    """One element of a page with a `data-testid`: its attributes, those of the elements around it (the nearest
    wins: the row's customer, meter or period), and its text."""

    testid: str
    attrs: dict[str, str]
    context: dict[str, str]
    text: str = ""

    @property
    def value(self) -> str:
        return self.attrs.get("data-value", "")


class _Collector(HTMLParser):
    _VOID = {"input", "meta", "link", "br", "img", "hr"}

    def __init__(self):
        super().__init__()
        self.stack: list[tuple[str, dict[str, str], Shown | None]] = []
        self.found: list[Shown] = []

    def handle_starttag(self, tag, attrs):
        attrs = {k: v or "" for k, v in attrs}
        context = {}
        for _, outer, _ in self.stack:
            context.update({k: v for k, v in outer.items() if k.startswith("data-")})
        shown = Shown(attrs["data-testid"], attrs, context) if "data-testid" in attrs else None
        if shown is not None:
            self.found.append(shown)
        if tag not in self._VOID:
            self.stack.append((tag, attrs, shown))

    def handle_endtag(self, tag):
        while self.stack:
            open_tag, _, _ = self.stack.pop()
            if open_tag == tag:
                break

    def handle_data(self, data):
        for _, _, shown in self.stack:
            if shown is not None:
                shown.text += data


def shown(html: str, testid: str | None = None) -> list[Shown]:
    collector = _Collector()
    collector.feed(html)
    return [s for s in collector.found if testid is None or s.testid == testid]

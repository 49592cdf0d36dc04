"""The browser tests' Chromium: Debian's `chromium` on the PATH (`make chromium` installs it; `make test` runs that
first). Without it these tests fail, saying how to get it: they never skip."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from metering_dagster.settings import Settings
from tests.browser.cdp import Browser, Page
from tests.serving.console_demo import ADMIN_TOKEN

INSTALL = "make chromium (apt-get install -y --no-install-recommends chromium)"


def find_chromium() -> str:
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail(f"the browser tests need Debian's chromium on the PATH: {INSTALL}", pytrace=False)
    return executable


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    started = Browser(find_chromium())
    yield started
    started.close()


@pytest.fixture
def page(browser) -> Iterator[Page]:
    """A new tab, with no cookies and no extra headers left by another test."""
    tab = browser.new_page()
    tab.clear_cookies()
    yield tab
    tab.close()


# The console on the demo's data (`console_demo`, one `metering demo` for the session: tests/serving/console_demo.py).


@dataclass
class Console:
    base: str
    settings: Settings
    marts: Path  # a copy of the published analysts' copy, for the tests' own queries

    def query(self, sql: str, params=()) -> list[tuple]:
        con = duckdb.connect(str(self.marts), read_only=True)
        try:
            return con.execute(sql, list(params)).fetchall()
        finally:
            con.close()


@pytest.fixture(scope="session")
def console(console_demo, tmp_path_factory) -> Console:
    marts = tmp_path_factory.mktemp("marts") / "analytics.duckdb"
    shutil.copy(console_demo.settings.analytics_path, marts)
    return Console(console_demo.base, console_demo.settings, marts)


@pytest.fixture
def admin(page, console) -> Page:
    """A tab signed in with the admin token, as a person signs in (a cookie: a download sends it, where Chromium
    sends no extra header)."""
    assert page.goto(console.base + "/login") == 200
    assert page.submit('form[data-testid="login-form"]', {"token": ADMIN_TOKEN}) == 200
    return page

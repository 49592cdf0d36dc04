"""The browser tests' Chromium: Debian's `chromium` on the PATH (`make chromium` installs it; `make test` runs that
first). Without it these tests fail, saying how to get it: they never skip."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from tests.browser.cdp import Browser, Page

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

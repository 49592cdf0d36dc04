"""The DevTools client against a page served here: what the console's tests rely on (headers and cookies reach
the server, a chart drawn by script is waited for and its marks counted, a download gives the served bytes,
screenshots have the fixed size, a missing element is a clear error, not a hang)."""

from __future__ import annotations

import struct
from urllib.parse import parse_qs

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.browser.cdp import WINDOW, BrowserError
from tests.browser.conftest import find_chromium
from tests.serving.conftest import run_server

CSV = "event_id\nevt_1\nevt_2\n"


async def chart(request: Request) -> HTMLResponse:
    # the bars are drawn by script after the load event, as vega-embed draws a chart
    who = request.headers.get("authorization", "-")
    cookie = request.cookies.get("session", "-")
    return HTMLResponse(
        f"""<!doctype html><html><body>
        <p data-testid="who">{who}</p><p data-testid="cookie">{cookie}</p>
        <a data-testid="download" href="/events.csv">CSV</a>
        <div id="chart"></div>
        <script>setTimeout(() => {{
          const bars = [3, 1, 4].map((h, i) => `<rect class="mark" x="${{i * 20}}" width="10" height="${{h * 10}}"/>`);
          document.getElementById('chart').innerHTML = `<svg width="80" height="50">${{bars.join('')}}</svg>`;
        }}, 200);</script></body></html>"""
    )


async def events_csv(request: Request) -> Response:
    return PlainTextResponse(CSV, headers={"content-disposition": 'attachment; filename="events.csv"'})


async def login(request: Request) -> Response:
    if request.method == "GET":
        return HTMLResponse('<form method="post" action="/login"><input name="token"><button>Sign in</button></form>')
    token = parse_qs((await request.body()).decode())["token"][0]
    response = RedirectResponse("/", status_code=303)
    response.set_cookie("session", token, httponly=True, samesite="strict")
    return response


async def forbidden(request: Request) -> Response:
    return HTMLResponse("<p>not yours</p>", status_code=403)


@pytest.fixture(scope="module")
def site():
    app = Starlette(
        routes=[
            Route("/", chart),
            Route("/events.csv", events_csv),
            Route("/login", login, methods=["GET", "POST"]),
            Route("/forbidden", forbidden),
        ]
    )
    server, thread, base = run_server(app)
    yield base
    server.should_exit = True
    thread.join(timeout=10)


def test_headers_reach_the_server_and_a_chart_drawn_by_script_is_waited_for(page, site):
    page.set_headers({"Authorization": "Bearer tok-harness"})
    assert page.goto(site + "/") == 200
    page.wait_for("#chart svg rect.mark")
    assert page.count("#chart svg rect.mark") == 3
    assert page.text("[data-testid=who]") == "Bearer tok-harness"


def test_a_login_form_sets_the_cookie_the_next_pages_send(page, site):
    assert page.goto(site + "/login") == 200
    assert page.submit("form", {"token": "tok-customer"}) == 200
    assert page.url() == site + "/"
    assert page.text("[data-testid=cookie]") == "tok-customer"


def test_the_status_of_a_refused_page_and_a_clear_error_for_a_missing_element(browser, page, site):
    assert page.goto(site + "/forbidden") == 403
    browser.timeout, timeout = 1, browser.timeout
    try:
        with pytest.raises(BrowserError, match=r"no #chart svg on .*/forbidden"):
            page.wait_for("#chart svg")
    finally:
        browser.timeout = timeout


def test_a_download_gives_the_served_file(page, site):
    page.goto(site + "/")
    assert page.download("[data-testid=download]").read_text() == CSV


def test_a_screenshot_is_a_png_of_the_fixed_width_or_of_one_element(page, site, tmp_path):
    page.goto(site + "/")
    page.wait_for("#chart svg")
    png = page.screenshot(tmp_path / "page.png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == WINDOW  # the page is shorter than the window: the window's height
    chart = page.screenshot(tmp_path / "chart.png", "#chart svg")
    assert struct.unpack(">II", chart[16:24]) == (80, 50)  # the element alone
    assert page.pdf()[:5] == b"%PDF-"


def test_without_chromium_the_browser_tests_fail_and_say_how_to_install_it(monkeypatch):
    monkeypatch.setenv("PATH", "")
    with pytest.raises(pytest.fail.Exception, match=r"make chromium"):
        find_chromium()

"""The usage console in headless Chromium on the demo's data, as a person sees it: every number shown equals the
marts, every chart has one mark per day with usage, a line's CSV download lists the events `metering explain`
lists for that line, a statement's total is Stripe's final invoice, and a customer's token shows only that
customer. Screenshots for the README are taken on the way (docs/screenshots/ when METERING_SCREENSHOTS=docs)."""

from __future__ import annotations

import csv
import os
import re
import shutil
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote

import duckdb
import pytest

from metering_dagster.display import count, money, quantity
from metering_dagster.serving.api import create_app
from metering_dagster.serving.console.tokens import create_token
from metering_dagster.settings import Settings
from tests.browser.cdp import Page
from tests.browser.conftest import Console
from tests.conftest import REPO_ROOT
from tests.periods.test_period_close import metering, stripe_invoices
from tests.serving.conftest import run_server
from tests.serving.console_demo import ADMIN_TOKEN, OCTOBER

pytestmark = pytest.mark.slow  # one `metering demo` for the folder

CURRENCY = "usd"
SCREENSHOTS = REPO_ROOT / "docs" / "screenshots"


def plain(value: Decimal | int | None) -> str:
    """A number as the pages' `data-value` holds it: exact, without trailing zeros ("" when missing)."""
    return "" if value is None else quantity(value, grouped=False)


def cents(rows: list[tuple]) -> int | None:
    values = [row[0] for row in rows if row[0] is not None]
    return int(sum(values)) if values else None


def numbers(page: Page, scope: str, testid: str) -> list[tuple[str, str]]:
    """(data-value, text) of every number `testid` inside `scope`."""
    return page.evaluate(
        """([scope, testid]) => [...document.querySelectorAll(`${scope} [data-testid="${testid}"]`)]
            .map((e) => [e.dataset.value, e.innerText.trim()])""",
        [scope, testid],
    )


def shown_money(page: Page, scope: str, testid: str) -> int | None:
    """The amount in cents of the one money cell `testid` in `scope`, checked against its text (two decimals and
    the contract's currency)."""
    [(value, text)] = numbers(page, scope, testid)
    amount = int(value) if value else None
    assert text == money(amount, CURRENCY), (scope, testid, value, text)
    return amount


def shown_quantity(page: Page, scope: str, testid: str) -> str:
    """The plain value of the one quantity cell `testid` in `scope`, checked against its text (grouped, no
    trailing zeros, and the meter's unit where the page gives it: `1,234.5 GB`)."""
    [(value, text)] = numbers(page, scope, testid)
    expected = quantity(Decimal(value) if value else None)
    assert text == expected or re.fullmatch(re.escape(expected) + r" [A-Za-z]+", text), (scope, testid, value, text)
    return value


def parse_utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def shot(page: Page, name: str, tmp_path: Path, selector: str | None = None) -> None:
    """A README screenshot (the page at the fixed window width, or one element of it): into docs/screenshots/
    when asked (METERING_SCREENSHOTS=docs), else a scratch folder."""
    folder = SCREENSHOTS if os.environ.get("METERING_SCREENSHOTS") == "docs" else tmp_path
    png = page.screenshot(folder / f"{name}.png", selector)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000  # not a blank page


def rendered(page: Page, selector: str) -> None:
    """Wait until every chart matching `selector` is drawn (or says why not)."""
    page.wait_for(selector)
    page.evaluate(
        """async (selector) => {
            const deadline = Date.now() + 20000;
            for (;;) {
                const charts = [...document.querySelectorAll(selector)];
                const failed = charts.find((c) => c.dataset.renderError);
                if (failed) throw new Error(`chart ${failed.dataset.meter}: ${failed.dataset.renderError}`);
                if (charts.every((c) => c.dataset.rendered === 'true')) return;
                if (Date.now() > deadline) throw new Error('charts not rendered: ' + selector);
                await new Promise((r) => setTimeout(r, 50));
            }
        }""",
        selector,
    )


def test_customers_page_shows_the_marts_numbers(console: Console, admin: Page, tmp_path):
    assert admin.goto(console.base + "/") == 200
    admin.wait_for('table[data-testid="customers"]')
    customers = admin.attributes("tr[data-customer-id]", "data-customer-id")
    assert customers == [r[0] for r in console.query("select customer_id from marts.fct_entitlements order by 1")]
    for customer in customers:
        row = f'tr[data-customer-id="{customer}"]'
        [start] = admin.attributes(f'{row} [data-testid="period"]', "data-period-start")
        period = parse_utc(start)
        # the current period is Stripe's (its test clock is in November)
        [(current,)] = console.query(
            "select period_start from marts.fct_budget_status where customer_id = ? and is_current limit 1",
            [customer],
        )
        assert period == current
        spend = console.query(
            "select amount_cents from marts.fct_invoice_lines_expected where customer_id = ? and period_start = ?",
            [customer, period],
        )
        assert shown_money(admin, row, "spend") == cents(spend)
        usage = dict(
            console.query(
                "select meter, quantity from marts.fct_invoice_lines_expected where customer_id = ? and period_start = ?",
                [customer, period],
            )
        )
        # a line's quantity is the period's usage (a meter with no usage yet has a line of 0)
        assert {m: q for m, q in usage.items() if q} == dict(
            console.query(
                "select meter, quantity from marts.fct_usage_by_period where customer_id = ? and period_start = ?"
                " and quantity <> 0",
                [customer, period],
            )
        )
        shown = {}
        for meter, value, text in admin.evaluate(
            """(row) => [...document.querySelectorAll(`${row} [data-testid="usage"]`)]
                .map((e) => [e.dataset.meter, e.dataset.value, e.innerText.trim()])""",
            row,
        ):
            assert text == quantity(Decimal(value)), (customer, meter, value, text)
            shown[meter] = value
        assert shown == {meter: plain(q) for meter, q in usage.items()}
        [(access, percent)] = admin.evaluate(
            """(row) => [...document.querySelectorAll(`${row} [data-testid="budget-status"]`)]
                .map((e) => [e.dataset.access, e.dataset.percent])""",
            row,
        )
        [(worst_access, highest)] = console.query(
            "select max(access), max(percent) from marts.fct_budget_status where customer_id = ? and is_current",
            [customer],
        )
        assert (access, percent) == (worst_access, plain(highest))
        statuses = console.query(
            "select distinct status from marts.rpt_reconciliation where customer_id = ? and period_start = ?"
            " and invoice_status not in ('preview', 'draft')",
            [customer, datetime(2026, 10, 1, tzinfo=UTC)],
        )
        assert statuses == [("match",)]
        reconciliation = f'{row} [data-testid="reconciliation-status"]'
        assert admin.attributes(reconciliation, "data-value") == ["match"]
        assert admin.attributes(reconciliation, "data-period-start") == [OCTOBER]  # the last period Stripe invoiced
        assert admin.text(reconciliation) == "match (2026-10-01)"
    assert admin.text('[data-testid="as-of"]')
    shot(admin, "customers", tmp_path)


@pytest.mark.parametrize("customer", ["cus_acme", "cus_globex"])
def test_a_customer_page_has_one_bar_per_day_with_usage_and_the_marts_invoices(
    console: Console, admin: Page, customer, tmp_path
):
    assert admin.goto(f"{console.base}/customers/{customer}") == 200
    rendered(admin, '[data-testid^="chart-"]')
    [(current,)] = console.query(
        "select period_start from marts.fct_budget_status where customer_id = ? and is_current limit 1", [customer]
    )
    meters = admin.attributes('section[data-testid="meter"]', "data-meter")
    assert sorted(meters) == [
        r[0]
        for r in console.query(
            "select distinct meter from marts.fct_usage_daily where customer_id = ? order by 1", [customer]
        )
    ]
    for meter in meters:
        chart = f'[data-testid="chart-daily"][data-meter="{meter}"]'
        [(days,)] = console.query(
            "select count(*) from marts.fct_usage_daily where customer_id = ? and meter = ? and quantity <> 0",
            [customer, meter],
        )
        assert admin.count(f"{chart} svg .mark-rect path") == days, meter
        assert admin.attributes(chart, "data-marks") == [str(days)]
        [(hours,)] = console.query(
            "select count(distinct date_trunc('hour', event_ts)) from marts.fct_metered_events"
            " where customer_id = ? and meter = ? and period_start = ?",
            [customer, meter, current],
        )
        hourly = f'[data-testid="chart-hourly"][data-meter="{meter}"]'
        assert admin.count(f"{hourly} svg .mark-rect path") == hours, meter
        assert admin.attributes(hourly, "data-marks") == [str(hours)]
        # period to date: a line where the meter has usage this period, and the budget's limit as a rule
        cumulative = f'[data-testid="chart-cumulative"][data-meter="{meter}"]'
        [marks] = admin.attributes(cumulative, "data-marks")
        assert admin.count(f"{cumulative} svg .mark-line.role-mark path") == (1 if marks != "0" else 0), meter
        [(budgets,)] = console.query(
            "select count(*) from marts.fct_budget_status where customer_id = ? and meter = ? and is_current",
            [customer, meter],
        )
        if marks != "0":
            assert admin.count(f"{cumulative} svg .mark-rule.role-mark line") == budgets, meter

    upcoming = 'table[data-testid="upcoming-invoice"]'
    [start] = admin.attributes(upcoming, "data-period-start")
    period = parse_utc(start)
    lines = console.query(
        "select e.meter, e.quantity, e.amount_cents, r.stripe_quantity, r.stripe_amount_cents, r.invoice_status,"
        " r.status"
        " from marts.fct_invoice_lines_expected e left join marts.rpt_reconciliation r using (customer_id, meter,"
        " period_start) where e.customer_id = ? and e.period_start = ? order by 1",
        [customer, period],
    )
    assert sorted(admin.attributes(f"{upcoming} tr[data-meter]", "data-meter")) == [line[0] for line in lines]
    for meter, ours, amount, stripe_quantity, stripe_amount, invoice_status, status in lines:
        row = f'{upcoming} tr[data-meter="{meter}"]'
        assert shown_quantity(admin, row, "quantity") == plain(ours)
        assert shown_money(admin, row, "amount") == amount
        assert shown_quantity(admin, row, "stripe-quantity") == plain(stripe_quantity)
        assert shown_money(admin, row, "stripe-amount") == stripe_amount
        assert admin.text(f'{row} [data-testid="stripe-status"]') == invoice_status  # a preview: not final yet
        assert admin.text(f'{row} [data-testid="status"]') == status
    assert shown_money(admin, upcoming, "upcoming-total") == cents([(line[2],) for line in lines])

    budgets = console.query(
        "select budget_key, budget_kind, used, limit_value, percent from marts.fct_budget_status"
        " where customer_id = ? and is_current order by 1",
        [customer],
    )
    assert sorted(admin.attributes('[data-testid="budget"]', "data-budget")) == [b[0] for b in budgets]
    for key, kind, used, limit, percent in budgets:
        budget = f'[data-testid="budget"][data-budget="{key}"]'
        if kind == "spend":  # in cents
            assert (shown_money(admin, budget, "used"), shown_money(admin, budget, "limit")) == (used, limit)
        else:
            assert (shown_quantity(admin, budget, "used"), shown_quantity(admin, budget, "limit")) == (
                plain(used),
                plain(limit),
            )
        assert shown_quantity(admin, budget, "percent") == plain(percent)

    history = 'table[data-testid="invoice-history"]'
    october = f'{history} tr[data-period-start="{OCTOBER}"]'
    [(our_total, invoice_id, invoiced, adjusted)] = console.query(
        "select sum(local_amount_cents), any_value(stripe_invoice_id), sum(invoiced_amount_cents),"
        " sum(adjustment_amount_cents) from marts.rpt_reconciliation where customer_id = ? and period_start = ?",
        [customer, datetime(2026, 10, 1, tzinfo=UTC)],
    )
    assert shown_money(admin, october, "our-total") == our_total
    assert admin.text(f'{october} [data-testid="stripe-invoice-id"]') == invoice_id
    assert shown_money(admin, october, "stripe-total") == invoiced
    [(value, text)] = numbers(admin, october, "adjustments")
    assert (int(value), text) == (
        (adjusted, f"{money(adjusted, CURRENCY)} for this period, billed later") if adjusted else (0, "none")
    )
    if customer == "cus_acme":
        shot(admin, "customer", tmp_path, 'section[data-testid="meter"][data-meter="api_calls"]')


def explain(settings: Settings, customer: str, period: str) -> tuple[list[str], list[dict[str, str]]]:
    """What `metering explain` prints for an invoice (its lines, stripped) and the rows of the CSV of event ids it
    writes: the real command, on the same state folder."""
    env = os.environ | {"METERING_STATE_DIR": str(settings.state_dir), "DAGSTER_HOME": str(settings.dagster_home)}
    printed = metering("explain", "--customer", customer, "--period", period, env=env).stdout.strip().splitlines()
    with open(printed[-1].removeprefix("event ids: "), newline="") as f:
        return [line.strip() for line in printed], list(csv.DictReader(f))


def test_a_line_page_says_what_metering_explain_says_and_downloads_its_events(console: Console, admin: Page):
    customer, meter = "cus_globex", "api_calls"
    printed, events = explain(console.settings, customer, "2026-10-01")
    explained = [row for row in events if row["meter"] == meter]
    assert len(explained) > 100, "the line's events fill more than one page"
    line = f"{console.base}/customers/{customer}/periods/{OCTOBER}/meters/{meter}"
    assert admin.goto(line) == 200
    [(quantity_, amount)] = console.query(
        "select quantity, amount_cents from marts.fct_invoice_lines_expected"
        " where customer_id = ? and meter = ? and period_start = ?",
        [customer, meter, datetime(2026, 10, 1, tzinfo=UTC)],
    )
    assert shown_quantity(admin, "body", "line-quantity") == plain(quantity_)
    assert shown_money(admin, "body", "line-amount") == amount
    # the explanation, as the command prints it
    assert admin.text('[data-testid="aggregation"]') in printed
    steps = admin.texts('ol[data-testid="pricing"] > li')
    assert steps and all(step in printed for step in steps), steps
    counts = [
        shown_quantity(admin, "body", testid) for testid in ("event-count", "duplicate-count", "quarantined-count")
    ]
    assert counts[0] == str(len(explained))
    events_, duplicates, quarantined = (int(n) for n in counts)
    assert (
        f"{count(events_, 'event')}, {count(duplicates, 'duplicate')}, {count(quarantined, 'quarantined line')}"
        in printed
    )
    daily = console.query(
        "select strftime(usage_date, '%Y-%m-%d'), quantity, event_count from marts.fct_usage_daily"
        " where customer_id = ? and meter = ? and usage_date >= date '2026-10-01' and usage_date < date '2026-11-01'"
        " order by 1",
        [customer, meter],
    )
    days = admin.attributes('table[data-testid="daily-usage"] tr[data-date]', "data-date")
    assert days == [day for day, _, _ in daily]
    for day, used, events_that_day in daily:
        row = f'table[data-testid="daily-usage"] tr[data-date="{day}"]'
        assert (shown_quantity(admin, row, "quantity"), shown_quantity(admin, row, "events")) == (
            plain(used),
            str(events_that_day),
        )

    # the events, 100 a page, are the events explain lists
    listed = admin.attributes('table[data-testid="events"] tr[data-event-id]', "data-event-id")
    assert admin.next_document(lambda: admin.click('a[data-testid="next-page"]')) == 200
    listed += admin.attributes('table[data-testid="events"] tr[data-event-id]', "data-event-id")
    assert listed == [row["event_id"] for row in explained]

    downloaded = admin.download('a[data-testid="download-csv"]')
    with open(downloaded, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["event_id"] for r in rows] == [r["event_id"] for r in explained]
    assert rows == explained  # the same columns and values, not only the ids

    parquet = admin.download('a[data-testid="download-parquet"]')
    ids = duckdb.sql(f"select event_id from read_parquet('{parquet}')").fetchall()
    assert [r[0] for r in ids] == [r["event_id"] for r in explained]


def test_the_statement_total_is_stripes_final_invoice(console: Console, admin: Page, tmp_path):
    customer = "cus_acme"
    invoices = stripe_invoices(console.settings.state_dir)
    total, status, _lines = invoices[(customer, "2026-10-01")]
    assert status in ("open", "paid")  # final at Stripe
    statement = f"{console.base}/customers/{customer}/periods/{OCTOBER}/statement"
    assert admin.goto(statement) == 200
    rendered(admin, '[data-testid="chart-daily"]')
    assert shown_money(admin, "body", "statement-total") == total
    assert admin.attributes('[data-testid="statement-total"]', "data-source") == ["stripe"]
    lines = console.query(
        "select meter, quantity, amount_cents from marts.fct_invoice_lines_expected"
        " where customer_id = ? and period_start = ? order by 1",
        [customer, datetime(2026, 10, 1, tzinfo=UTC)],
    )
    assert sorted(admin.attributes('tr[data-testid="statement-line"]', "data-meter")) == [line[0] for line in lines]
    for meter, ours, amount in lines:
        row = f'tr[data-testid="statement-line"][data-meter="{meter}"]'
        assert shown_quantity(admin, row, "quantity") == plain(ours)
        assert shown_money(admin, row, "amount") == amount
    [(days,)] = console.query(
        "select count(distinct usage_date) from marts.fct_usage_daily where customer_id = ? and quantity <> 0"
        " and usage_date >= date '2026-10-01' and usage_date < date '2026-11-01'",
        [customer],
    )
    assert admin.count('[data-testid="chart-daily"] svg .mark-rect path') == days
    assert admin.pdf()[:5] == b"%PDF-"  # printable
    pdf = admin.download('a[data-testid="download-pdf"]')
    assert pdf.read_bytes()[:5] == b"%PDF-"
    shot(admin, "statement", tmp_path)


def test_a_customer_token_logs_in_and_sees_only_its_customer(console: Console, page: Page):
    token = create_token(console.settings.state_dir, "cus_globex")
    assert page.goto(console.base + "/customers/cus_globex") == 401
    assert page.goto(console.base + "/login") == 200
    assert page.submit('form[data-testid="login-form"]', {"token": token}) == 200
    assert page.url() == console.base + "/customers/cus_globex"  # `/` sends a customer to its own page
    rendered(page, '[data-testid^="chart-"]')
    html = page.evaluate("() => document.documentElement.outerHTML")
    others = [
        r[0] for r in console.query("select customer_id from marts.fct_entitlements where customer_id <> 'cus_globex'")
    ]
    assert others and not [other for other in others if other in html]
    assert token not in html and ADMIN_TOKEN not in html
    for other in others:
        assert page.goto(f"{console.base}/customers/{other}") == 403
        assert page.goto(f"{console.base}/customers/{quote(other.upper())}") == 403
        assert page.goto(f"{console.base}/customers/{quote(other, safe='').replace('_', '%5F')}") == 403
        assert page.goto(f"{console.base}/customers/{other}/periods/{OCTOBER}/statement") == 403
    assert page.goto(console.base + "/") == 200 and page.url() == console.base + "/customers/cus_globex"
    assert page.submit('form[data-testid="logout"]', {}) == 200  # back on the login page
    assert page.goto(console.base + "/customers/cus_globex") == 401


def test_a_page_reloads_itself_when_a_newer_run_is_published(console: Console, browser, tmp_path):
    # a state folder of its own (the other tests keep theirs), published into as a run publishes: a new file
    # renamed over the old one
    state = tmp_path / "state"
    state.mkdir()
    for name in ("analytics.duckdb", "reader.duckdb"):
        shutil.copy(console.settings.state_dir / name, state / name)
    settings = Settings(state_dir=state, raw_dir=state / "raw", contract_path=console.settings.contract_path)
    server, thread, base = run_server(create_app(settings, ADMIN_TOKEN))
    page = browser.new_page()
    try:
        page.set_headers({"Authorization": f"Bearer {ADMIN_TOKEN}"})
        assert page.goto(base + "/customers/cus_acme?refresh=1") == 200
        [before] = page.attributes("body", "data-as-of")

        def publish_a_newer_run() -> None:
            newer = state / "analytics.duckdb.tmp"
            shutil.copy(state / "analytics.duckdb", newer)
            con = duckdb.connect(str(newer))
            con.execute("update marts.fct_entitlements set as_of = as_of + interval 1 minute")
            con.close()
            os.replace(newer, state / "analytics.duckdb")

        assert page.next_document(publish_a_newer_run, timeout=10) == 200  # reloaded by itself
        [after] = page.attributes("body", "data-as-of")
        assert parse_utc(after) - parse_utc(before) == timedelta(minutes=1)
    finally:
        page.close()
        server.should_exit = True
        thread.join(timeout=10)

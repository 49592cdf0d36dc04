"""Every number the usage console shows equals the marts; a line's download equals `metering explain`'s event ids;
a statement's total equals Stripe's final invoice (read from Stripe with its SDK). HTTP-level, on the demo's data."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from metering_dagster.display import money, quantity
from tests.conftest import DEMO_DIR
from tests.periods.test_period_close import stripe_invoices
from tests.serving.console_demo import NOVEMBER, OCTOBER, shown

pytestmark = pytest.mark.slow  # one `metering demo` for the module's tests

REPO_ROOT = Path(__file__).resolve().parents[2]


def plain(value) -> str:
    return "" if value is None else (str(value) if isinstance(value, int) else quantity(value, grouped=False))


def test_the_customers_page_shows_the_marts_current_period(console_demo):
    page = console_demo.get("/").text
    rows = {s.context["data-customer-id"]: s for s in shown(page, "spend")}
    spend = dict(
        console_demo.marts(
            "select customer_id, sum(amount_cents) from marts.fct_invoice_lines_expected "
            "where period_start = ?::timestamptz group by all",
            [NOVEMBER],
        )
    )
    assert {c: s.value for c, s in rows.items()} == {c: str(v) for c, v in spend.items()}
    assert rows["cus_acme"].text == money(spend["cus_acme"], "usd")  # two decimals and the currency
    usage = {(s.context["data-customer-id"], s.attrs["data-meter"]): s.value for s in shown(page, "usage")}
    expected = console_demo.marts(
        "select customer_id, meter, quantity from marts.fct_invoice_lines_expected where period_start = ?::timestamptz",
        [NOVEMBER],
    )
    assert usage == {(c, m): plain(q) for c, m, q in expected}
    budget = {
        s.context["data-customer-id"]: (s.attrs["data-percent"], s.attrs["data-access"])
        for s in shown(page, "budget-status")
    }
    highest = console_demo.marts(
        "select customer_id, max(percent), max(access) from marts.fct_budget_status where is_current group by all"
    )
    assert budget == {c: (plain(p), a) for c, p, a in highest}
    assert budget["cus_globex"][1] == "block"
    reconciled = {
        s.context["data-customer-id"]: (s.value, s.attrs["data-period-start"])
        for s in shown(page, "reconciliation-status")
    }
    assert reconciled == {c: ("match", OCTOBER) for c in spend}
    as_of = console_demo.marts("select any_value(as_of) from marts.fct_entitlements")[0][0]
    assert shown(page, "as-of")[0].attrs["datetime"] == as_of.isoformat().replace("+00:00", "Z")


def test_a_customer_page_shows_its_invoices_and_a_chart_mark_per_day_with_usage(console_demo):
    page = console_demo.get("/customers/cus_globex").text
    upcoming = {
        (s.context["data-meter"], s.testid): s.value
        for s in shown(page)
        if s.testid in ("quantity", "amount", "stripe-quantity", "stripe-amount") and "data-meter" in s.context
    }
    rows = console_demo.marts(
        """select l.meter, l.quantity, l.amount_cents, r.stripe_quantity, r.stripe_amount_cents
           from marts.fct_invoice_lines_expected l left join marts.rpt_reconciliation r using (customer_id, meter, period_start)
           where customer_id = 'cus_globex' and period_start = ?::timestamptz""",
        [NOVEMBER],
    )
    assert upcoming == {
        (meter, name): plain(value)
        for meter, *values in rows
        for name, value in zip(("quantity", "amount", "stripe-quantity", "stripe-amount"), values)
    }
    assert shown(page, "upcoming-total")[0].value == str(sum(r[2] for r in rows))
    history = {s.context["data-period-start"]: s.value for s in shown(page, "stripe-total")}
    invoiced = console_demo.marts(
        "select sum(invoiced_amount_cents) from marts.rpt_reconciliation where customer_id = 'cus_globex' and period_start = ?::timestamptz",
        [OCTOBER],
    )[0][0]
    assert history == {OCTOBER: str(invoiced)}
    budget = shown(page, "budget-limit")
    assert [(b.context["data-meter"], b.value) for b in budget] == [("api_calls", "150")]

    days = dict(
        console_demo.marts(
            "select meter, count(*) from marts.fct_usage_daily where customer_id = 'cus_globex' "
            "and usage_date >= date '2026-10-01' group by all"
        )
    )
    charts = {c.attrs["data-meter"]: c for c in shown(page, "chart-daily")}
    for meter, chart in charts.items():
        spec = json.loads(
            re.search(rf'<script type="application/json" id="{chart.attrs["data-chart"]}">(.*?)</script>', page).group(
                1
            )
        )
        assert int(chart.attrs["data-marks"]) == len(spec["data"]["values"]) == days.get(meter, 0), meter
    assert int(charts["api_calls"].attrs["data-marks"]) > 0


def test_a_line_page_says_what_explain_says_and_its_downloads_are_explains_event_ids(console_demo, tmp_path):
    line = f"/customers/cus_globex/periods/{OCTOBER}/meters/api_calls"
    page = console_demo.get(line).text
    explained = subprocess.run(
        [sys.executable, "-m", "metering_dagster.cli", "explain", "--customer", "cus_globex", "--period", OCTOBER],
        env=os.environ
        | {"METERING_STATE_DIR": str(console_demo.state), "METERING_CONTRACT": str(DEMO_DIR / "metering.yml")},
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO_ROOT,
        check=True,
    ).stdout
    csv_path = Path(explained.rsplit("event ids: ", 1)[1].strip())
    with open(csv_path, newline="") as f:
        explain_rows = [row for row in csv.reader(f)]
    header, explain_rows = explain_rows[0], [r for r in explain_rows[1:] if r[0] == "api_calls"]

    downloaded = console_demo.get(line + "/events.csv")
    assert downloaded.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(downloaded.text)))
    assert rows[0] == header and rows[1:] == explain_rows and len(explain_rows) == 186

    parquet = pl.read_parquet(io.BytesIO(console_demo.get(line + "/events.parquet").body))
    assert parquet["event_id"].to_list() == [r[1] for r in explain_rows]
    assert [quantity(v, grouped=False) for v in parquet["value"].to_list()] == [r[3] for r in explain_rows]

    # the page: explain's pricing steps verbatim, its counts, and the first page of the same events
    block = explained.split("\napi_calls", 1)[1].split("\n\n", 1)[0]
    for step in re.findall(r"<li>(.*?)</li>", page.split('data-testid="pricing"', 1)[1].split("</ol>", 1)[0]):
        assert step.replace("&#39;", "'") in block
    assert shown(page, "event-count")[0].value == "186" and "186 events" in block
    assert shown(page, "line-quantity")[0].value == "186"
    assert shown(page, "line-amount")[0].value == "74"  # 186 calls, all in the 101-500 tier at 0.4 cents: 74.4
    assert [s.context["data-event-id"] for s in shown(page, "value")] == [r[1] for r in explain_rows[:100]]
    second = console_demo.get(line + "?page=2").text
    assert [s.context["data-event-id"] for s in shown(second, "value")] == [r[1] for r in explain_rows[100:]]


def test_a_statement_total_is_stripes_final_invoice(console_demo):
    invoices = stripe_invoices(console_demo.state)
    for customer in ("cus_acme", "cus_globex", "cus_initech", "cus_umbrella"):
        total, status, _ = invoices[(customer, "2026-10-01")]
        assert status in ("open", "paid")
        page = console_demo.get(f"/customers/{customer}/periods/{OCTOBER}/statement").text
        shown_total = shown(page, "statement-total")[0]
        assert (shown_total.value, shown_total.attrs["data-source"]) == (str(total), "stripe"), customer
        assert shown_total.text.strip() == money(total, "usd")
        lines = {s.context["data-meter"]: s.value for s in shown(page, "amount")}
        assert sum(int(v) for v in lines.values()) == total
        pdf = console_demo.get(f"/customers/{customer}/periods/{OCTOBER}/statement.pdf")
        assert pdf.headers["content-type"] == "application/pdf" and pdf.body.startswith(b"%PDF-1.4")
        assert money(total, "usd").encode() in pdf.body and pdf.body.rstrip().endswith(b"%%EOF")
    # the current period is not invoiced yet: the statement says so and totals our own lines
    page = console_demo.get(f"/customers/cus_acme/periods/{NOVEMBER}/statement").text
    ours = console_demo.marts(
        "select sum(amount_cents) from marts.fct_invoice_lines_expected where customer_id = 'cus_acme' and period_start = ?::timestamptz",
        [NOVEMBER],
    )[0][0]
    assert (shown(page, "statement-total")[0].value, shown(page, "statement-total")[0].attrs["data-source"]) == (
        str(ours),
        "ours",
    )
    assert Decimal(ours) > 0

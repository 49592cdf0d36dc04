"""explain, corrections preview and the demo's summary read the same days on a machine outside UTC.

DuckDB's session takes the machine's time zone, and a cast from TIMESTAMPTZ to DATE goes through it: in
Los Angeles a period starting 2026-10-01 00:00 UTC began on 2026-09-30, in Kiritimati (UTC+14) one starting
at 12:00 UTC on the next day. The dbt models' side of the same rule is
tests/pipeline/test_dbt_models.py::test_periods_and_days_do_not_depend_on_the_machines_time_zone.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import duckdb
import pytest

from metering_dagster.commands.corrections import preview_corrections
from metering_dagster.commands.demo import print_invoices
from metering_dagster.commands.explain import explain, print_explanation
from metering_dagster.serving.reader_copy import publish_reader_copy
from metering_dagster.settings import Settings
from metering_dagster.warehouse import connect
from tests.output.conftest import built_warehouse

# Both sides of UTC: a period starting at midnight UTC moves back a day in one, at noon UTC forward in the other.
ZONES = ["America/Los_Angeles", "Pacific/Kiritimati"]

CONTRACT = """
environment: test
currency: usd
meters:
  - {key: calls, action: call, aggregation: count, unit: call, price: {model: per_unit, unit_amount_decimal: "150"}}
customers:
  - {id: cus_midnight, billing_anchor: "2026-10-01T00:00:00Z"}
  - {id: cus_noon, billing_anchor: "2026-10-01T12:00:00Z"}
"""


def call(event_id: str, ts: str, customer: str) -> dict:
    return {"event_id": event_id, "timestamp": ts, "customer_id": customer, "action": "call"}


LINES = [
    call("m1", "2026-10-01T00:30:00Z", "cus_midnight"),  # the period's first day
    call("m2", "2026-10-31T23:00:00Z", "cus_midnight"),  # its last day
    call("n1", "2026-10-01T13:00:00Z", "cus_noon"),
    call("n2", "2026-10-31T23:00:00Z", "cus_noon"),
]


@pytest.fixture(scope="module")
def settings(dbt, tmp_path_factory):
    wh = built_warehouse(
        dbt,
        tmp_path_factory,
        CONTRACT,
        LINES,
        datetime(2026, 11, 1, 0, 30, tzinfo=UTC),
        "--exclude",
        "tag:reconciliation",
    )
    settings = Settings(state_dir=wh.state_dir, raw_dir=wh.raw_dir, contract_path=wh.state_dir / "metering.yml")
    with connect(wh.path) as con:
        publish_reader_copy(con, settings)
        # What the demo's summary reads, as a reconciliation would have left it: Stripe's view of the invoices.
        con.execute("""INSERT INTO stripe_view.invoice_lines
                (customer_id, meter, period_start, period_end, stripe_invoice_id, invoice_status, quantity, amount_cents)
            SELECT customer_id, meter, period_start, period_end, 'in_' || customer_id, 'draft', quantity, amount_cents
            FROM marts.fct_invoice_lines_expected;
            CREATE TABLE marts.rpt_reconciliation AS
            SELECT customer_id, meter, period_start, quantity AS local_quantity, quantity AS stripe_quantity,
                   amount_cents AS local_amount_cents, amount_cents AS stripe_amount_cents, 'match' AS status
            FROM marts.fct_invoice_lines_expected""")
    # arrived after the run: what the corrections preview shows
    wh.add_file(
        "late.jsonl",
        [call("m3", "2026-10-15T10:00:00Z", "cus_midnight"), call("n3", "2026-10-15T10:00:00Z", "cus_noon")],
    )
    return settings


@pytest.fixture(params=ZONES)
def session_zone(request, monkeypatch):
    """This process's time zone, which every DuckDB connection opened from now on takes as its session's."""
    monkeypatch.setenv("TZ", request.param)
    time.tzset()
    assert duckdb.connect().execute("SELECT current_setting('TimeZone')").fetchone()[0] == request.param
    yield request.param
    monkeypatch.undo()
    time.tzset()


def explained(settings, capsys, customer: str, period: str) -> tuple[list, list[str]]:
    explanation = explain(settings, customer, period)
    capsys.readouterr()
    print_explanation(explanation)
    return [(line.meter, line.daily) for line in explanation.lines], capsys.readouterr().out.splitlines()


@pytest.mark.parametrize(
    "customer, period", [("cus_midnight", "2026-10-01T00:00:00+00:00"), ("cus_noon", "2026-10-01T12:00:00+00:00")]
)
def test_explain_reads_the_same_usage_days(settings, capsys, customer, period, session_zone):
    days, printed = explained(settings, capsys, customer, period)
    assert [day[0] for _, daily in days for day in daily] == ["2026-10-01", "2026-10-31"]
    assert not any("2026-09-30" in line or "2026-10-02" in line for line in printed)


def test_the_demo_summary_shows_each_period_on_its_utc_day(settings, capsys, session_zone):
    print_invoices(settings)
    printed = capsys.readouterr().out
    assert printed.count("2026-10-01") >= 4  # each customer: its line and its invoice
    assert "2026-09-30" not in printed and "2026-10-02" not in printed


@pytest.mark.slow  # several dbt builds or a subprocess run: out of make test-fast
def test_the_corrections_preview_shows_each_period_on_its_utc_day(settings, session_zone):
    changes = preview_corrections(settings).changes
    assert {(c.customer_id, c.period_start) for c in changes} == {
        ("cus_midnight", "2026-10-01"),
        ("cus_noon", "2026-10-01"),
    }

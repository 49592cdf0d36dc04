"""Incremental dbt builds: aggregates merged from new events only, and data tests scoped to the
landing runs they have not passed on yet. Each must give what a --full-refresh gives."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from .conftest import Warehouse, _release_duckdb, event

CONTRACT = """
environment: test
currency: usd
grace_period: 1h
meters:
  - {key: usage, action: use, value: value, aggregation: sum, price: {model: per_unit, unit_amount_decimal: "1"}}
  - {key: calls, action: call, aggregation: count, price: {model: per_unit, unit_amount_decimal: "1"}}
  - {key: peak, action: gauge, value: level, aggregation: max, price: {model: per_unit, unit_amount_decimal: "1"}}
  - {key: seats, action: seat, value: seats, aggregation: last_during_period, price: {model: per_unit, unit_amount_decimal: "1"}}
  - {key: storage, action: store, value: gb, aggregation: last_ever, price: {model: per_unit, unit_amount_decimal: "1"}}
  - {key: users, action: visit, value: user, aggregation: unique_count, price: {model: per_unit, unit_amount_decimal: "1"}}
customers:
  - {id: c1, billing_anchor: "2026-10-01T00:00:00Z"}
  - {id: c2, billing_anchor: "2026-10-01T00:00:00Z"}
"""
DAY = "2026-10-10T12:00:00Z"


def ev(event_id, action, ts=DAY, customer="c1", **extra):
    return event(event_id, ts, customer, action, **extra)


RUNS = [
    {
        "day1.jsonl": [
            ev("u1", "use", value=5),
            ev("u2", "use", value="7.5"),
            ev("k1", "call"),
            ev("k2", "call", ts="2026-10-11T00:00:00Z"),
            ev("g1", "gauge", level=3),
            ev("s1", "seat", seats=5),
            ev("st1", "store", ts="2026-10-02T00:00:00Z", gb=12),
            ev("v1", "visit", user="a"),
            ev("v2", "visit", user="b"),
            ev("v3", "visit", customer="c2", user="a"),
            ev("x1", "use", customer="nobody", value=1),  # quarantined
        ]
    },
    {
        "day2.jsonl": [
            ev("u1", "use", value=500),  # a late re-send of a billed event: a conflict, not billed again
            ev("u3", "use", value=-3),  # a correction
            ev("k3", "call"),
            ev("g2", "gauge", level=2),  # below the period's max
            ev("s2", "seat", seats=8),  # same timestamp as s1: the later receipt wins
            ev("s0", "seat", ts="2026-10-10T11:00:00Z", seats=100),  # earlier: not the last
            ev("st0", "store", ts="2026-10-01T00:00:00Z", gb=99),  # earlier than st1: not the last
            ev("v4", "visit", user="a"),  # a value already counted
            ev("v5", "visit", user="c"),
            ev("x1", "use", customer="c1", value=2),  # a valid copy of a quarantined event counts
        ]
    },
    {
        "day3.jsonl": [
            ev("s2", "seat", seats=8),  # exact re-send
            ev("g3", "gauge", level=9),
            ev("v6", "visit", customer="c2", user="a"),
            ev("n1", "use", ts="2026-11-02T00:00:00Z", value=1),  # next period
        ]
    },
]
TABLES = [
    "intermediate.int_usage_events_deduplicated",
    "intermediate.int_usage_periods_aggregated",
    "intermediate.int_usage_daily_aggregated",
    "marts.fct_usage_daily",
    "marts.fct_usage_by_period",
    "marts.fct_invoice_lines_expected",
    "marts.fct_metered_events",
    "marts.rpt_quarantined_events",
    "marts.rpt_duplicate_events",
]


def build(dbt, state_dir, *args: str) -> dict[str, str]:
    """dbt build without asserting success: test name -> status."""
    os.environ["METERING_STATE_DIR"] = str(state_dir)
    try:
        result = dbt.runner.invoke(["build", *dbt.common, "--exclude", "tag:reconciliation", *args])
    finally:
        _release_duckdb()
    assert result.result is not None, result.exception
    return {r.node.name: str(r.status) for r in result.result}


def scenario(tmp_path, runs=RUNS) -> Warehouse:
    (tmp_path / "state").mkdir()
    wh = Warehouse(state_dir=tmp_path / "state", raw_dir=tmp_path / "raw")
    wh.write_contract(CONTRACT)
    wh.runs = runs
    return wh


def land(wh: Warehouse, i: int) -> None:
    for name, lines in wh.runs[i].items():
        wh.add_file(name, lines)
    wh.land(datetime(2026, 11, 3 + i, tzinfo=UTC))


@pytest.mark.slow  # several dbt builds or a subprocess run: out of make test-fast
def test_merged_aggregates_equal_a_full_refresh(dbt, tmp_path):
    wh = scenario(tmp_path)
    for i in range(len(RUNS)):
        land(wh, i)
        dbt.run(wh.state_dir, "build", "--exclude", "tag:reconciliation")
    incremental = {t: wh.snapshot(t) for t in TABLES}

    quantities = dict(
        ((c, m), q)
        for c, m, q in wh.query(
            "select customer_id, meter, quantity from marts.fct_usage_by_period where period_start = '2026-10-01'"
        )
    )
    assert quantities == {
        ("c1", "usage"): Decimal("11.5"),  # 5 + 7.5 - 3 + 2; the re-sent u1 is not billed again
        ("c1", "calls"): 3,
        ("c1", "peak"): 9,
        ("c1", "seats"): 8,
        ("c1", "storage"): 12,
        ("c1", "users"): 3,  # a, b, c
        ("c2", "users"): 1,
    }
    conflicts = wh.query("select event_id, is_conflict from marts.rpt_duplicate_events order by 1")
    assert conflicts == [("s2", False), ("u1", True)]

    dbt.run(wh.state_dir, "build", "--full-refresh", "--exclude", "tag:reconciliation")
    assert {t: wh.snapshot(t) for t in TABLES} == incremental


@pytest.mark.slow  # several dbt builds or a subprocess run: out of make test-fast
def test_a_scoped_test_keeps_failing_until_fixed(dbt, tmp_path):
    wh = scenario(tmp_path)
    land(wh, 0)
    assert build(dbt, wh.state_dir)["primary_key_int_usage_events_deduplicated_event_id"] == "pass"
    land(wh, 1)
    assert build(dbt, wh.state_dir)["primary_key_int_usage_events_deduplicated_event_id"] == "pass"

    # A later build that re-keeps an id of the first run (as a dedupe bug would): the scoped test reads
    # every copy of the new ids, old runs included.
    from metering_dagster.warehouse import connect

    with connect(wh.path) as con:
        con.execute(
            "insert into intermediate.int_usage_lines_validated "
            "select * replace (3 as landing_run_id) from intermediate.int_usage_lines_validated "
            "where event_id = 'k1' and is_kept"
        )
    assert build(dbt, wh.state_dir)["primary_key_int_usage_events_deduplicated_event_id"] == "fail"
    # Its mark did not advance: the next build tests the same rows again.
    assert build(dbt, wh.state_dir)["primary_key_int_usage_events_deduplicated_event_id"] == "fail"

    full = build(dbt, wh.state_dir, "--full-refresh")
    assert full["primary_key_int_usage_events_deduplicated_event_id"] == "pass"
    assert set(full.values()) <= {"success", "pass"}
    land(wh, 2)
    assert set(build(dbt, wh.state_dir).values()) <= {"success", "pass"}

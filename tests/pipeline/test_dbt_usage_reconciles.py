"""The marts' grain tests and the usage in = usage out tests: they pass on a clean build and each fails on the
fault it is there to catch, made by hand in a copy of the warehouse."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime

import pytest

from metering_dagster.warehouse import connect

from .conftest import Warehouse, _release_duckdb, event

CONTRACT = """
environment: test
currency: usd
grace_period: 1h
meters:
  - {key: tokens, action: infer, value: metadata.tokens, aggregation: sum, filter: {metadata.model: [a]},
     price: {model: per_unit, unit_amount_decimal: "1"}}
  - {key: calls, action: infer, aggregation: count, price: {model: per_unit, unit_amount_decimal: "1"}}
  - {key: peak, action: gauge, value: level, aggregation: max, price: {model: per_unit, unit_amount_decimal: "1"}}
customers:
  - {id: c_midnight, billing_anchor: "2026-10-01T00:00:00Z"}
  - {id: c_noon, billing_anchor: "2026-09-15T12:00:00Z"}
"""


def infer(event_id, customer, ts, model="a", tokens=10):
    return event(event_id, ts, customer, "infer", metadata={"model": model, "tokens": tokens})


LINES = [
    infer("e1", "c_midnight", "2026-10-01T00:00:00Z"),
    infer("e2", "c_midnight", "2026-10-31T23:59:59Z", tokens="2.5"),
    infer("e3", "c_midnight", "2026-11-01T00:00:00Z", model="b"),  # counted by calls, filtered out of tokens
    infer("e1", "c_midnight", "2026-10-02T00:00:00Z"),  # duplicate
    infer("n1", "c_noon", "2026-10-15T11:00:00Z"),  # the day 2026-10-15 spans two of c_noon's periods
    infer("n2", "c_noon", "2026-10-15T13:00:00Z", tokens=7),
    event("g1", "2026-10-16T00:00:00Z", "c_noon", "gauge", level=4),
    event("g2", "2026-10-20T00:00:00Z", "c_noon", "gauge", level=9),
    event("q1", "2026-10-03T00:00:00Z", "nobody", "gauge", level=1),  # quarantined
]

# Each fault made in a copy of the built warehouse, and the one test (its name, the model it belongs to) it
# fails. A row added to an aggregate carries no quantity or event, so that only the grain test sees it.
FAULTS = {
    "a day twice": (
        (
            "insert into intermediate.int_usage_daily_aggregated select * replace (0 as quantity, 0 as event_count) "
            "from intermediate.int_usage_daily_aggregated limit 1"
        ),
        ("unique_combination", "fct_usage_daily"),
    ),
    "a period twice": (
        (
            "insert into marts.fct_usage_by_period select * replace (0 as quantity, 0 as event_count) "
            "from marts.fct_usage_by_period where not is_carried limit 1"
        ),
        ("unique_combination", "fct_usage_by_period"),
    ),
    "an invoice line twice": (
        "insert into marts.fct_invoice_lines_expected select * from marts.fct_invoice_lines_expected limit 1",
        ("unique_combination", "fct_invoice_lines_expected"),
    ),
    "an event metered twice for a meter, another not at all": (
        "update intermediate.int_usage_events_metered set event_id = 'e1' where event_id = 'e2' and meter = 'calls'",
        ("unique_combination", "fct_metered_events"),
    ),
    "a quarantined line twice": (
        "insert into marts.rpt_quarantined_events select * from marts.rpt_quarantined_events limit 1",
        ("unique_combination", "rpt_quarantined_events"),
    ),
    "a comparison twice": (
        "insert into marts.rpt_reconciliation select * from marts.rpt_reconciliation limit 1",
        ("unique_combination", "rpt_reconciliation"),
    ),
    "a kept event left out of its meter": (
        "delete from intermediate.int_usage_events_metered where event_id = 'n1' and meter = 'tokens'",
        ("every_kept_event_metered_once", "fct_metered_events"),
    ),
    "a duplicate not recorded": (
        "delete from marts.rpt_duplicate_events",
        ("every_valid_line_kept_or_duplicate", "rpt_duplicate_events"),
    ),
    "a period's sum that is not its days'": (
        (
            "update marts.fct_usage_by_period set quantity = quantity + 1 "
            "where customer_id = 'c_noon' and meter = 'tokens' and period_start = '2026-10-15 12:00:00+00'"
        ),
        ("periods_add_up_to_days", "fct_usage_by_period"),
    ),
}


@pytest.fixture(scope="module")
def built(dbt, tmp_path_factory) -> Warehouse:
    root = tmp_path_factory.mktemp("reconciles")
    (root / "state").mkdir()
    wh = Warehouse(state_dir=root / "state", raw_dir=root / "raw")
    wh.write_contract(CONTRACT)
    wh.add_file("usage.jsonl", LINES)
    wh.land(datetime(2026, 11, 2, tzinfo=UTC))
    dbt.run(wh.state_dir, "build")  # every test passes on the clean build (dbt.run asserts it)
    return wh


def failing_tests(dbt, built: Warehouse, copy_to, statements: list[str]) -> set[tuple[str, str]]:
    """Run every data test on a copy of the warehouse with the statements applied; the tests that fail."""
    shutil.copytree(built.state_dir, copy_to)
    with connect(copy_to / "warehouse.duckdb") as con:
        for statement in statements:
            con.execute(statement)
        con.execute("delete from intermediate.dbt_tests_passed")  # the tests read every row, not only new runs
    os.environ["METERING_STATE_DIR"] = str(copy_to)
    try:
        result = dbt.runner.invoke(["test", *dbt.common, "--select", "test_type:data"])
    finally:
        _release_duckdb()
    assert result.result is not None, result.exception
    return {
        (r.node.test_metadata.name, r.node.attached_node.split(".")[-1])
        for r in result.result
        if r.node.resource_type == "test" and str(r.status) != "pass"
    }


def test_each_fault_fails_its_test_and_only_it(dbt, built, tmp_path):
    """All the faults at once, in separate rows: each fails its own test, and nothing else fails."""
    failed = failing_tests(dbt, built, tmp_path / "faulty", [sql for sql, _ in FAULTS.values()])
    assert failed == {test for _, test in FAULTS.values()}


def test_a_max_meter_is_not_summed_over_days(dbt, built, tmp_path):
    """A max meter's period quantity is not the sum of its days' (c_noon's peak: 4 and 9, max 9): no failure."""
    assert built.query(
        "select quantity from marts.fct_usage_by_period where customer_id = 'c_noon' and meter = 'peak'"
    ) == [(9,)]
    assert failing_tests(dbt, built, tmp_path / "clean", []) == set()

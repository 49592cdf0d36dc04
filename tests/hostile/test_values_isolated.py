"""One customer's values never stop the others: out-of-range values are quarantined, lines too large to price
are named and held, a period total too precise for Stripe holds only its customer, and no sum or product can
overflow in SQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tests.pipeline import conftest as pipeline
from tests.pipeline.conftest import Warehouse, event

dbt, warehouse = pipeline.dbt, pipeline.warehouse  # the pipeline tests' fixtures

LANDED = datetime(2026, 11, 2, tzinfo=UTC)
T = "2026-10-10T10:00:00Z"

CONTRACT = """
environment: test
currency: usd
grace_period: 1h
meters:
  - {key: tokens, action: infer, value: tokens, aggregation: sum, price: {model: per_unit, unit_amount_decimal: "0.0004"}}
  - {key: seats, action: seat, value: seats, aggregation: last_during_period, price: {model: per_unit, unit_amount_decimal: "800"}}
customers:
  - {id: c_big, billing_anchor: "2026-10-01T00:00:00Z"}
  - {id: c_ok, billing_anchor: "2026-10-01T00:00:00Z"}
"""


def build(warehouse: Warehouse, dbt, lines: list[dict]) -> None:
    from metering_dagster.defs.landing.checks import DOWNSTREAM_SQL

    warehouse.write_contract(CONTRACT)
    warehouse.add_file("usage.jsonl", lines)
    warehouse.land(LANDED)
    dbt.run(warehouse.state_dir, "build", "--exclude", "tag:reconciliation")
    # lines read = valid + quarantined + blank, nothing lost, nothing counted twice
    for _, read, blank, _, valid, quarantined in warehouse.query(DOWNSTREAM_SQL):
        assert read == blank + valid + quarantined


def quarantined(warehouse: Warehouse) -> dict[str, tuple[str, str]]:
    return {
        r[0]: (r[1], r[2])
        for r in warehouse.query("select event_id, reason, reason_detail from marts.rpt_quarantined_events")
    }


def test_twenty_huge_values_are_quarantined_instead_of_overflowing_the_sum(warehouse, dbt):
    """Twenty events of 9e25 tokens overflowed DECIMAL(38,12) in the period sum: dbt failed, nobody was billed."""
    huge = [event(f"huge{i}", T, "c_big", "infer", tokens="9e25") for i in range(20)]
    build(warehouse, dbt, [*huge, event("fine", T, "c_ok", "infer", tokens=1000)])
    reasons = quarantined(warehouse)
    assert {reasons[f"huge{i}"][0] for i in range(20)} == {"value_out_of_range"}
    assert "10^15" in reasons["huge0"][1]
    assert warehouse.query("select customer_id, quantity from marts.fct_usage_by_period where meter = 'tokens'") == [
        ("c_ok", Decimal(1000))
    ]


def test_a_huge_seat_count_is_quarantined_instead_of_overflowing_the_price(warehouse, dbt):
    """seats: "1e25" overflowed DECIMAL(38) when priced (x 800 cents): dbt failed for every customer."""
    build(warehouse, dbt, [event("seats", T, "c_big", "seat", seats="1e25"), event("fine", T, "c_ok", "seat", seats=3)])
    assert quarantined(warehouse)["seats"][0] == "value_out_of_range"
    assert warehouse.query(
        "select customer_id, amount_cents, amount_problem from marts.fct_invoice_lines_expected where meter = 'seats'"
        " order by 1"
    ) == [("c_big", 0, None), ("c_ok", 2400, None)]


def test_a_line_too_large_to_price_is_named_instead_of_overflowing(warehouse, dbt):
    """A valid 9e14 seats x 800 cents cannot be priced exactly in DECIMAL(38,24): the line is named, not priced."""
    build(
        warehouse,
        dbt,
        [event("seats", T, "c_big", "seat", seats="900000000000000"), event("fine", T, "c_ok", "seat", seats=3)],
    )
    assert warehouse.query(
        "select customer_id, quantity, amount_cents, amount_problem from marts.fct_invoice_lines_expected"
        " where meter = 'seats' order by 1"
    ) == [("c_big", Decimal(900000000000000), None, "amount_out_of_range"), ("c_ok", Decimal(3), 2400, None)]


def test_values_bounds_count_the_places_the_exponent_moves(warehouse, dbt):
    """The bound reads the number's real magnitude: 0.0001e18 is 10^14 (kept), 0.01e17 is 10^15 (out of range);
    100e-2 has no decimal place (kept), 1e-13 has thirteen (invalid)."""
    build(
        warehouse,
        dbt,
        [
            event("e14", T, "c_ok", "infer", tokens="0.0001e18"),
            event("e15", T, "c_ok", "infer", tokens="0.01e17"),
            event("one", T, "c_ok", "infer", tokens="100e-2"),
            event("tiny", T, "c_ok", "infer", tokens="1e-13"),
        ],
    )
    reasons = quarantined(warehouse)
    assert {k: v[0] for k, v in reasons.items()} == {"e15": "value_out_of_range", "tiny": "invalid_value"}
    assert warehouse.query("select quantity from marts.fct_usage_by_period where meter = 'tokens'") == [
        (Decimal(100000000000001),)
    ]


def test_an_event_before_the_first_billing_period_is_quarantined(warehouse, dbt):
    """An event before the customer's anchor was a valid event of a period that is never invoiced (1970, year 1)."""
    build(
        warehouse,
        dbt,
        [
            event("epoch", 0, "c_ok", "infer", tokens=5),
            event("year1", "0001-01-01T00:00:00Z", "c_ok", "infer", tokens=5),
            event("sept", "2026-09-30T23:59:59Z", "c_ok", "infer", tokens=5),
            event("at_anchor", "2026-10-01T00:00:00Z", "c_ok", "infer", tokens=7),
        ],
    )
    reasons = quarantined(warehouse)
    assert {k: v[0] for k, v in reasons.items()} == {
        "epoch": "before_first_period",
        "year1": "before_first_period",
        "sept": "before_first_period",
    }
    assert "2026-10-01T00:00:00Z" in reasons["sept"][1]
    assert warehouse.query("select period_start::date::varchar, quantity from marts.fct_usage_by_period") == [
        ("2026-10-01", Decimal(7))
    ]


def test_a_total_too_precise_for_stripe_holds_only_its_customer(warehouse, dbt):
    """1,000,000 + 0.000000000001 tokens has 19 significant digits: the gate withheld every customer's upload."""
    from metering_dagster.contract import load_contract
    from metering_dagster.quality.holds import withheld_customers
    from metering_dagster.quality.suites import (
        validate_shadow_invoice,
        validate_usage_upload,
    )
    from metering_dagster.warehouse import connect

    build(
        warehouse,
        dbt,
        [
            event("big", T, "c_big", "infer", tokens=1000000),
            event("tiny", T, "c_big", "infer", tokens="0.000000000001"),
            event("fine", T, "c_ok", "infer", tokens=1000),
        ],
    )
    contract = load_contract(warehouse.state_dir / "metering.yml")
    with connect(warehouse.path) as con:
        usage = validate_usage_upload(con, contract)
        assert not usage.blocks_everyone and not usage.success
        assert usage.failing_customers == ["c_big"]
        [held] = usage.held
        assert (held.customer_id, held.meter, held.reason) == ("c_big", "tokens", "quantity_too_precise")
        assert "1000000.000000000001" in held.detail and "19 significant digits" in held.detail
        assert "c_big" in usage.describe() and "quantity_too_precise" in usage.describe()
        assert validate_shadow_invoice(con, contract).success
        assert withheld_customers(con, contract) == {"c_big"}


@pytest.mark.slow  # a full `metering run`
def test_metering_run_uploads_the_others_and_names_the_customer_held(metering_env, dbt_manifest):
    """End to end: one customer's total too precise for Stripe no longer withholds every customer's upload."""
    import os
    import shutil
    import subprocess
    import sys

    import duckdb

    from tests.conftest import DEMO_DIR, REPO_ROOT

    shutil.copytree(DEMO_DIR / "raw", metering_env["raw"], dirs_exist_ok=True)
    (metering_env["raw"] / "precise.jsonl").write_text(
        "".join(
            json.dumps(
                event(
                    f"precise-{i}",
                    "2026-10-05T10:00:00Z",
                    "cus_acme",
                    "model_inference",
                    metadata={"model": "gpt-4o", "input_tokens": value},
                )
            )
            + "\n"
            for i, value in enumerate(["999999999999", "0.0001234"])
        )
    )

    def metering(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "metering_dagster.cli", *args],
            env=dict(os.environ),
            capture_output=True,
            text=True,
            timeout=600,
            cwd=REPO_ROOT,
            check=False,
        )

    assert metering("clock", "advance", "--to", "2026-11-01T00:30:00Z").returncode == 0
    run = metering("run")
    assert run.returncode not in (1, 2), run.stdout + run.stderr  # 2 was: the upload withheld for everyone
    assert "usage_upload_suite" in run.stdout and "cus_acme" in run.stdout and "quantity_too_precise" in run.stdout
    assert "1 customer withheld by the quality gate" in run.stdout, run.stdout
    con = duckdb.connect(str(metering_env["state"] / "warehouse.duckdb"), read_only=True)
    try:
        uploaded = {r[0] for r in con.execute("select distinct customer_id from ops.stripe_ledger").fetchall()}
        statuses = con.execute(
            "select customer_id = 'cus_acme', status, count(*) from marts.rpt_reconciliation group by all order by all"
        ).fetchall()
    finally:
        con.close()
    assert uploaded == {"cus_globex", "cus_initech", "cus_umbrella"}
    # Stripe holds what the warehouse says for every line that can be billed; the held customer's differ
    assert [s for s in statuses if not s[0]] == [(False, "match", 18)]
    assert "every_line_landed_or_quarantined" not in run.stdout

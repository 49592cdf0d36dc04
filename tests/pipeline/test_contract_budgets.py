"""Budgets and entitlements in metering.yml: parsed exactly, "*" assigned, every error listed (exit 3)."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from metering_dagster.contract import ContractError, load_contract, write_contract_tables
from metering_dagster.warehouse import connect

HEAD = """
environment: test
currency: usd
meters:
  - {key: calls, action: api_request, aggregation: count, unit: call, price: {model: per_unit, unit_amount_decimal: "1"}}
customers:
  - {id: cus_a, billing_anchor: "2026-10-01T00:00:00Z"}
  - {id: cus_b, billing_anchor: "2026-10-15T00:00:00Z"}
  - {id: cus_c, billing_anchor: "2026-10-31T00:00:00Z"}
"""


def contract_file(tmp_path: Path, tail: str) -> Path:
    path = tmp_path / "metering.yml"
    path.write_text(HEAD + tail)
    return path


def test_budgets_parse_exactly_and_star_applies_to_customers_without_their_own(tmp_path):
    contract = load_contract(
        contract_file(
            tmp_path,
            """
budgets:
  - {key: spend, customer: "*", spend: "5000.5"}
  - {key: spend, customer: cus_b, spend: "100", thresholds: [50, 90, 100], on_exceed: block}
  - {key: cap, customer: cus_c, meter: calls, quantity: 20, on_exceed: block}
entitlements: {fail_mode: closed, max_staleness: 2m}
""",
        )
    )
    star, own, cap = contract.budgets
    assert (star.kind, star.limit, star.thresholds, star.on_exceed) == ("spend", Decimal("5000.5"), (80, 100), "notify")
    assert (own.thresholds, own.on_exceed) == ((50, 90, 100), "block")
    assert (cap.kind, cap.meter, cap.limit) == ("quantity", "calls", Decimal(20))
    assert (contract.entitlements.fail_mode, contract.entitlements.max_staleness_seconds) == ("closed", 120)
    assigned = [(customer, budget.key, budget.customer) for customer, budget in contract.assigned_budgets()]
    assert assigned == [
        ("cus_a", "spend", "*"),
        ("cus_b", "spend", "cus_b"),  # its own budget under the key, not the default
        ("cus_c", "cap", "cus_c"),
        ("cus_c", "spend", "*"),
    ]


def test_defaults_without_budgets(tmp_path):
    contract = load_contract(contract_file(tmp_path, ""))
    assert contract.budgets == () and contract.assigned_budgets() == []
    assert (contract.entitlements.fail_mode, contract.entitlements.max_staleness_seconds) == ("open", 900)


def test_every_budget_error_is_listed_with_its_field(tmp_path):
    path = contract_file(
        tmp_path,
        """
budgets:
  - {key: Bad-Key, customer: cus_zz, spend: 1.5}
  - {key: both, customer: "*", spend: "10", meter: calls, quantity: "5"}
  - {key: neither, customer: cus_a}
  - {key: cap, customer: cus_a, meter: nope, quantity: "-3", thresholds: [0, 80, 80], on_exceed: shout}
  - {key: soft, customer: cus_a, spend: "10", thresholds: [50, 80], on_exceed: block}
  - {key: zero, customer: cus_a, spend: "0", colour: red}
  - {key: twice, customer: cus_a, spend: "10"}
  - {key: twice, customer: cus_a, spend: "20"}
entitlements: {fail_mode: maybe, max_staleness: soon, extra: 1}
""",
    )
    with pytest.raises(ContractError) as raised:
        load_contract(path)
    errors = "\n".join(raised.value.errors)
    for expected in (
        "budgets[0].key: must match",
        "budgets[0].customer: must be a customer id of this contract or \"*\", got 'cus_zz'",
        "budgets[1]: has spend and meter/quantity",
        "budgets[2]: needs spend",
        "budgets[3].meter: must be a meter key of this contract, got 'nope'",
        "budgets[3].quantity: must be a non-negative decimal",
        "budgets[3].thresholds[0]: must be a whole percentage from 1 to 10000, got 0",
        "budgets[3].thresholds: must not repeat a percentage",
        "budgets[3].on_exceed: must be one of notify, block, got 'shout'",
        "budgets[4].thresholds: a block budget needs a threshold of 100 or more",
        "budgets[5].spend: must be greater than 0",
        "budgets[5].colour: unknown field",
        "budgets[7]: duplicate budget 'twice' for customer 'cus_a'",
        "entitlements.fail_mode: must be one of open, closed, got 'maybe'",
        "entitlements.max_staleness: must be a duration like 30m, 1h or 2d, got 'soon'",
        "entitlements.extra: unknown field",
    ):
        assert expected in errors, f"{expected!r} not in:\n{errors}"
    assert all(e.startswith("metering.yml: ") for e in raised.value.errors)
    assert len(raised.value.errors) == 17  # each problem once


def test_budgets_are_written_to_the_warehouse(tmp_path):
    contract = load_contract(
        contract_file(
            tmp_path,
            """
budgets:
  - {key: spend, customer: "*", spend: "5000.25", thresholds: [100, 80]}
  - {key: cap, customer: cus_c, meter: calls, quantity: "20", on_exceed: block}
entitlements: {fail_mode: closed, max_staleness: 1h}
""",
        )
    )
    with connect(tmp_path / "w.duckdb") as con:
        write_contract_tables(con, contract)
        budgets = con.execute("select * from contract.budgets order by budget_key").fetchall()
        thresholds = con.execute("select * from contract.budget_thresholds order by all").fetchall()
        settings = con.execute(
            "select entitlement_fail_mode, entitlement_max_staleness_seconds from contract.settings"
        ).fetchone()
    assert budgets == [
        ("cap", "cus_c", "quantity", "calls", Decimal(20), "block"),
        ("spend", "*", "spend", None, Decimal("5000.25"), "notify"),
    ]
    assert thresholds == [("cap", "cus_c", 80), ("cap", "cus_c", 100), ("spend", "*", 80), ("spend", "*", 100)]
    assert settings == ("closed", 3600)


def test_metering_run_exits_3_listing_budget_errors(tmp_path, metering_env):
    path = contract_file(tmp_path, "budgets:\n  - {key: cap, customer: cus_a, meter: calls}\n")
    env = {**metering_env, "METERING_CONTRACT": str(path)}
    result = subprocess.run(
        [sys.executable, "-m", "metering_dagster.cli", "run"], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 3, result.stderr[-2000:]
    assert "budgets[0].quantity: is required" in result.stdout + result.stderr


def test_a_customer_cannot_be_named_star(tmp_path):
    path = tmp_path / "metering.yml"
    path.write_text(HEAD.replace("id: cus_c", 'id: "*"'))
    with pytest.raises(ContractError) as raised:
        load_contract(path)
    assert raised.value.errors == [
        'metering.yml: customers[2].id: must not be "*": in budgets, "*" means every customer without a budget of its own'
    ]

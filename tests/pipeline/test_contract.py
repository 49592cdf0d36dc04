"""metering.yml: load, validate (every error listed with file and field), fingerprint, warehouse tables."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from metering_dagster.contract import ContractError, load_contract, write_contract_tables
from metering_dagster.warehouse import connect

DEMO = Path(__file__).resolve().parents[2] / "data" / "demo" / "metering.yml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "metering.yml"
    path.write_text(text)
    return path


def test_demo_contract_covers_every_aggregation_and_price_model():
    contract = load_contract(DEMO)
    assert {m.aggregation for m in contract.meters} == {
        "sum",
        "count",
        "max",
        "last_during_period",
        "last_ever",
        "unique_count",
    }
    assert {m.price.model for m in contract.meters} == {"per_unit", "package", "graduated", "volume"}
    graduated = next(m for m in contract.meters if m.price.model == "graduated")
    assert graduated.price.tiers[0].flat_amount_decimal > 0
    assert all(isinstance(t.unit_amount_decimal, Decimal) for m in contract.meters for t in m.price.tiers)
    assert 3 <= len(contract.customers) <= 5


def test_amounts_are_exact_decimals_never_floats(tmp_path):
    contract = load_contract(
        write(
            tmp_path,
            """
environment: test
currency: USD
grace_period: 2h
meters:
  - {key: a, action: x, value: v, aggregation: sum, price: {model: per_unit, unit_amount_decimal: 0.000000000005}}
customers:
  - {id: c, billing_anchor: "2026-01-31T00:00:00+02:00"}
""",
        )
    )
    # an unquoted YAML number is read as its text, not as a float
    assert contract.meters[0].price.unit_amount_decimal == Decimal("0.000000000005")
    assert contract.currency == "usd"
    assert contract.grace_period_seconds == 7200
    assert contract.customers[0].billing_anchor.isoformat() == "2026-01-30T22:00:00+00:00"


def test_every_error_is_listed_with_file_and_field(tmp_path):
    path = write(
        tmp_path,
        """
environment: prod
currency: dollars
grace_period: soon
meters:
  - key: Bad-Key
    action: x
    aggregation: median
    price: {model: per_unit, unit_amount_decimal: "-1"}
  - key: ok
    action: y
    value: metadata.v
    aggregation: sum
    price:
      model: graduated
      tiers:
        - {up_to: 100, unit_amount_decimal: "1"}
        - {up_to: 50, unit_amount_decimal: "1"}
        - {up_to: 200, unit_amount_decimal: "1"}
  - key: ok
    action: z
    aggregation: count
    value: metadata.v
    price: {model: package, package: {size: 0, unit_amount_decimal: "1", round: sideways}}
customers:
  - {id: c1, billing_anchor: "2026-10-01T00:00:00"}
  - {id: c1, billing_anchor: "2026-10-01T00:00:00Z", interval: week}
""",
    )
    with pytest.raises(ContractError) as info:
        load_contract(path)
    errors = info.value.errors
    expected = [
        "metering.yml: environment:",
        "metering.yml: currency:",
        "metering.yml: grace_period:",
        "metering.yml: meters[0].key:",
        "metering.yml: meters[0].aggregation:",
        "metering.yml: meters[0].value:",
        "metering.yml: meters[0].price.unit_amount_decimal:",
        "metering.yml: meters[1].price.tiers[1].up_to:",
        "metering.yml: meters[1].price.tiers[2].up_to:",
        "metering.yml: meters[2].value:",
        "metering.yml: meters[2].key: duplicate",
        "metering.yml: meters[2].price.package.size:",
        "metering.yml: meters[2].price.package.round:",
        "metering.yml: customers[0].billing_anchor:",
        "metering.yml: customers[1].id: duplicate",
        "metering.yml: customers[1].interval:",
    ]
    for prefix in expected:
        assert any(e.startswith(prefix) for e in errors), (prefix, errors)
    assert len(errors) == len(expected), errors


def test_float_typed_amount_is_rejected(tmp_path):
    path = write(
        tmp_path,
        """
environment: test
currency: usd
meters:
  - {key: a, action: x, value: v, aggregation: sum, price: {model: per_unit, unit_amount_decimal: !!float 0.1}}
customers: [{id: c, billing_anchor: "2026-10-01T00:00:00Z"}]
""",
    )
    with pytest.raises(ContractError) as info:
        load_contract(path)
    assert info.value.errors == [
        "metering.yml: meters[0].price.unit_amount_decimal: must be a decimal string or integer, "
        "not float 0.1 (quote it)"
    ]


def test_invalid_yaml_names_the_file(tmp_path):
    with pytest.raises(ContractError) as info:
        load_contract(write(tmp_path, "meters: [\n"))
    assert info.value.errors[0].startswith("metering.yml: not valid YAML")


def test_price_fingerprint_is_stable_and_follows_the_price(tmp_path):
    base = DEMO.read_text()
    a = load_contract(DEMO).fingerprint
    assert a == load_contract(DEMO).fingerprint
    same = write(tmp_path, base.replace('unit_amount_decimal: "800"', "unit_amount_decimal: 800.0"))
    assert load_contract(same).fingerprint == a  # 800 and 800.0 are the same price
    changed = write(tmp_path, base.replace('unit_amount_decimal: "800"', 'unit_amount_decimal: "900"'))
    fp = load_contract(changed).fingerprint
    assert fp["seats"] != a["seats"]
    assert {k: v for k, v in fp.items() if k != "seats"} == {k: v for k, v in a.items() if k != "seats"}


def test_write_contract_tables_replaces_them(tmp_path):
    contract = load_contract(DEMO)
    con = connect(tmp_path / "w.duckdb")
    write_contract_tables(con, contract)
    write_contract_tables(con, contract)
    assert con.execute("select count(*) from contract.meters").fetchone()[0] == len(contract.meters)
    assert con.execute("select count(*) from contract.customers").fetchone()[0] == len(contract.customers)
    tiers = con.execute(
        "select tier_index, up_to, unit_amount_decimal, flat_amount_decimal from contract.price_tiers "
        "where meter = 'input_tokens' order by tier_index"
    ).fetchall()
    assert tiers == [
        (1, Decimal("100000"), Decimal("0.0004"), Decimal("500")),
        (2, None, Decimal("0.0002"), Decimal(0)),
    ]
    assert con.execute("select environment, currency, grace_period_seconds from contract.settings").fetchall() == [
        ("test", "usd", 3600)
    ]
    fp = con.execute("select price_fingerprint from contract.meters where meter = 'seats'").fetchone()[0]
    assert fp == contract.fingerprint["seats"]
    assert isinstance(con, duckdb.DuckDBPyConnection)

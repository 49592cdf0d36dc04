"""Fixtures: a contract loaded from YAML, a real DuckDB file, and the Stripe emulator over HTTP
through the real stripe SDK (the same `open_stripe` path as a run without STRIPE_API_KEY)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from metering_dagster.billing.client import StripeConnection, open_stripe
from metering_dagster.contract import Contract, load_contract
from metering_dagster.settings import Settings
from metering_dagster.warehouse import connect

CONTRACT_YAML = """\
environment: test
currency: usd
grace_period: 1h
meters:
  - key: input_tokens
    display_name: Input tokens
    action: model_inference
    value: metadata.input_tokens
    aggregation: sum
    price:
      model: graduated
      tiers:
        - {up_to: 1000, unit_amount_decimal: "0.5", flat_amount_decimal: "100"}
        - {up_to: inf, unit_amount_decimal: "0.25"}
  - key: api_calls
    action: api_call
    aggregation: count
    price:
      model: package
      package: {size: 100, unit_amount_decimal: "25", round: up}
  - key: storage_gb
    action: storage_report
    value: metadata.gb
    aggregation: max
    price:
      model: per_unit
      unit_amount_decimal: "12.5"
customers:
  - {id: cust_a, billing_anchor: "2026-10-01T00:00:00Z"}
  - {id: cust_b, billing_anchor: "2026-10-15T00:00:00Z"}
"""


def _emulator_ready() -> bool:
    try:
        from stripe_emulator import EmulatorServer  # noqa: F401
    except ImportError:
        return False
    return True


needs_emulator = pytest.mark.skipif(not _emulator_ready(), reason="stripe_emulator.EmulatorServer not available")


def write_contract(tmp_path: Path, text: str = CONTRACT_YAML) -> Contract:
    path = tmp_path / "metering.yml"
    path.write_text(text)
    return load_contract(path)


@pytest.fixture
def contract(tmp_path: Path) -> Contract:
    return write_contract(tmp_path)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path / "state", raw_dir=tmp_path / "raw", contract_path=tmp_path / "metering.yml")


@pytest.fixture
def con(settings: Settings) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = connect(settings.warehouse_path)
    connection.execute(
        """CREATE SCHEMA IF NOT EXISTS marts;
           CREATE TABLE IF NOT EXISTS marts.fct_usage_by_period (
               customer_id VARCHAR, meter VARCHAR, period_start TIMESTAMPTZ, period_end TIMESTAMPTZ,
               quantity DECIMAL(38, 12), event_count BIGINT, last_event_at TIMESTAMPTZ)"""
    )
    yield connection
    connection.close()


@pytest.fixture
def stripe_conn(settings: Settings, contract: Contract) -> Iterator[StripeConnection]:
    if not _emulator_ready():
        pytest.skip("stripe_emulator.EmulatorServer not available")
    with open_stripe(settings, contract, environ={}) as conn:
        yield conn


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def set_usage(con: duckdb.DuckDBPyConnection, rows: list[tuple]) -> None:
    """Replace the mart: rows of (customer, meter, period_start, period_end, quantity, last_event_at)."""
    con.execute("DELETE FROM marts.fct_usage_by_period")
    for customer, meter, start, end, quantity, last_at in rows:
        con.execute(
            "INSERT INTO marts.fct_usage_by_period VALUES (?, ?, ?::TIMESTAMPTZ, ?::TIMESTAMPTZ, ?, 1, ?::TIMESTAMPTZ)",
            [customer, meter, start, end, Decimal(quantity), last_at],
        )

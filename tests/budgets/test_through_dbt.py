"""Budget alerts from the mart dbt really builds: landed usage -> marts.fct_budget_status -> ops.budget_alerts ->
a signed webhook, including a negative correction that lifts a block and a second crossing."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from metering_dagster.budgets.evaluate import evaluate_alerts
from metering_dagster.budgets.webhooks import DeliveryPolicy, deliver_pending
from metering_dagster.warehouse import connect
from tests.budgets.conftest import SECRET
from tests.pipeline.conftest import Warehouse, dbt, event  # noqa: F401  (the session's dbt project, as a fixture here)

pytestmark = pytest.mark.slow

CONTRACT = """\
environment: test
currency: usd
meters:
  - key: tokens
    action: inference
    value: metadata.tokens
    aggregation: sum
    unit: token
    price: {model: per_unit, unit_amount_decimal: "1"}
customers:
  - {id: cus_a, billing_anchor: "2026-10-01T00:00:00Z", interval: month}
budgets:
  - {key: token_cap, customer: cus_a, meter: tokens, quantity: "100", thresholds: [80, 100], on_exceed: block}
"""
STRIPE_NOW = datetime(2026, 10, 20, tzinfo=UTC)


def build_and_evaluate(dbt, wh: Warehouse) -> list:  # noqa: F811
    wh.land()
    with connect(wh.path) as con:
        con.execute("insert into ops.stripe_clock_readings values (?, ?)", [STRIPE_NOW, STRIPE_NOW])
    dbt.run(wh.state_dir, "run", "--select", "+fct_budget_status")
    with connect(wh.path) as con:
        return evaluate_alerts(con, evaluated_at=datetime.now(UTC), webhook_configured=True)


def test_alerts_from_the_built_mart_are_delivered_signed(dbt, tmp_path, receiver):  # noqa: F811
    (tmp_path / "state").mkdir()
    warehouse = Warehouse(state_dir=tmp_path / "state", raw_dir=tmp_path / "raw")
    warehouse.write_contract(CONTRACT)
    warehouse.add_file("a.jsonl", [event("e1", "2026-10-05T00:00:00Z", "cus_a", "inference", metadata={"tokens": 120})])
    reached = build_and_evaluate(dbt, warehouse)
    assert [(a.alert_type, a.threshold_percent, a.access) for a in reached] == [
        ("budget.threshold_reached", 80, "block"),
        ("budget.threshold_reached", 100, "block"),
    ]
    assert json.loads(reached[1].payload)["used"] == "120" and json.loads(reached[1].payload)["unit"] == "token"

    # a negative correction brings usage to 90: the block is lifted, 80 % stays announced
    warehouse.add_file("b.jsonl", [event("e2", "2026-10-06T00:00:00Z", "cus_a", "inference", metadata={"tokens": -30})])
    cleared = build_and_evaluate(dbt, warehouse)
    assert [(a.alert_type, a.threshold_percent, a.sequence, a.access) for a in cleared] == [
        ("budget.threshold_cleared", 100, 2, "allow")
    ]
    assert build_and_evaluate(dbt, warehouse) == []  # nothing changed, nothing new

    with connect(warehouse.path) as con:
        result = deliver_pending(con, receiver.url, SECRET, policy=DeliveryPolicy(attempts=1))
    assert result.delivered == [a.alert_id for a in reached + cleared]
    assert receiver.acted_on() == result.delivered and all(r.signature_valid for r in receiver.received)

"""Budget alerts evaluated from marts.fct_budget_status into the outbox ops.budget_alerts, on a real DuckDB file."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from metering_dagster.budgets.evaluate import CLEARED, REACHED, evaluate_alerts
from metering_dagster.warehouse import connect
from tests.budgets.conftest import DEC, NOV, OCT, Status, set_status

NOW = datetime(2026, 10, 20, 12, 5, tzinfo=UTC)


def evaluate(con, **kwargs):
    return evaluate_alerts(con, evaluated_at=NOW, webhook_configured=kwargs.pop("webhook_configured", True))


def outbox(con) -> list[tuple]:
    return con.execute(
        """SELECT alert_type, budget_key, customer_id, period_start::DATE::VARCHAR, threshold_percent, sequence,
                  access, status
           FROM ops.budget_alerts ORDER BY creation_order"""
    ).fetchall()


def test_80_then_100_each_once_per_period_in_order_and_a_new_period_starts_over(warehouse):
    set_status(
        warehouse,
        Status("cus_acme", "monthly_spend", "4000", "5000"),
        Status("cus_globex", "monthly_spend", "100", "5000"),
    )
    assert [(a.customer_id, a.threshold_percent) for a in evaluate(warehouse)] == [("cus_acme", 80)]
    assert evaluate(warehouse) == []  # the same usage again: nothing new

    # acme crosses 100; globex crosses 80 and 100 in one run: 80 is created (and sent) first
    set_status(
        warehouse,
        Status("cus_acme", "monthly_spend", "5000", "5000"),
        Status("cus_globex", "monthly_spend", "7500.5", "5000"),
    )
    assert [(a.customer_id, a.threshold_percent) for a in evaluate(warehouse)] == [
        ("cus_acme", 100),
        ("cus_globex", 80),
        ("cus_globex", 100),
    ]
    assert evaluate(warehouse) == []

    # November: the budget starts over; October's row is no longer current
    set_status(
        warehouse,
        Status("cus_acme", "monthly_spend", "9000", "5000", is_current=False),
        Status("cus_acme", "monthly_spend", "4100", "5000", period_start=NOV, period_end=DEC),
    )
    november = evaluate(warehouse)
    assert [(a.threshold_percent, a.sequence, a.period_start) for a in november] == [(80, 1, NOV)]
    assert outbox(warehouse) == [
        (REACHED, "monthly_spend", "cus_acme", "2026-10-01", 80, 1, "allow", "pending"),
        (REACHED, "monthly_spend", "cus_acme", "2026-10-01", 100, 1, "allow", "pending"),
        (REACHED, "monthly_spend", "cus_globex", "2026-10-01", 80, 1, "allow", "pending"),
        (REACHED, "monthly_spend", "cus_globex", "2026-10-01", 100, 1, "allow", "pending"),
        (REACHED, "monthly_spend", "cus_acme", "2026-11-01", 80, 1, "allow", "pending"),
    ]
    assert len({row[0] for row in warehouse.execute("SELECT alert_id FROM ops.budget_alerts").fetchall()}) == 5


def test_the_payload_is_exact_json_fixed_at_creation(warehouse):
    set_status(
        warehouse,
        Status(
            "cus_globex",
            "api_call_cap",
            "25",
            "20",
            kind="quantity",
            meter="api_calls",
            unit="call",
            on_exceed="block",
            thresholds=(100,),
        ),
    )
    (alert,) = evaluate(warehouse)
    stored = warehouse.execute("SELECT alert_id, payload FROM ops.budget_alerts").fetchone()
    assert stored == (alert.alert_id, alert.payload)
    assert alert.alert_id.startswith("msg_") and "." not in alert.alert_id
    assert json.loads(stored[1]) == {
        "type": "budget.threshold_reached",
        "budget": "api_call_cap",
        "customer_id": "cus_globex",
        "period_start": "2026-10-01T00:00:00Z",
        "period_end": "2026-11-01T00:00:00Z",
        "threshold_percent": 100,
        "used": "25",
        "limit": "20",
        "unit": "call",
        "access": "block",
        "as_of": "2026-10-20T12:00:00Z",
    }
    assert list(json.loads(stored[1])) == [
        "type",
        "budget",
        "customer_id",
        "period_start",
        "period_end",
        "threshold_percent",
        "used",
        "limit",
        "unit",
        "access",
        "as_of",
    ]

    # a later correction of the same period changes the mart, never a stored body
    set_status(warehouse, Status("cus_globex", "api_call_cap", "30.25", "20", on_exceed="block", thresholds=(100,)))
    assert evaluate(warehouse) == []
    assert warehouse.execute("SELECT payload FROM ops.budget_alerts").fetchone()[0] == stored[1]


def test_fractional_usage_is_an_exact_decimal_string(warehouse):
    set_status(warehouse, Status("cus_acme", "tokens", "16.500000000001", "20", kind="quantity", unit="token"))
    (alert,) = evaluate(warehouse)
    assert json.loads(alert.payload)["used"] == "16.500000000001"


def test_spend_too_large_to_price_reaches_every_threshold_with_used_null(warehouse):
    set_status(warehouse, Status("cus_acme", "monthly_spend", None, "5000", on_exceed="block"))
    created = evaluate(warehouse)
    assert [(a.threshold_percent, a.access) for a in created] == [(80, "block"), (100, "block")]
    assert json.loads(created[1].payload)["used"] is None
    assert "(too large to price of 5,000 cents)" in created[1].line()
    assert warehouse.execute("SELECT count(*) FROM ops.budget_alerts WHERE used IS NULL").fetchone()[0] == 2


def test_a_block_budget_is_cleared_by_a_correction_and_reached_again(warehouse):
    def block(used: str) -> Status:
        return Status("cus_globex", "api_call_cap", used, "20", on_exceed="block", kind="quantity", unit="call")

    set_status(warehouse, block("25"))
    first = evaluate(warehouse)
    assert [(a.alert_type, a.threshold_percent, a.sequence, a.access) for a in first] == [
        (REACHED, 80, 1, "block"),
        (REACHED, 100, 1, "block"),
    ]
    set_status(warehouse, block("18"))  # a negative correction: under 100 %, still over 80 %
    cleared = evaluate(warehouse)
    assert [(a.alert_type, a.threshold_percent, a.sequence, a.access) for a in cleared] == [(CLEARED, 100, 2, "allow")]
    assert json.loads(cleared[0].payload)["type"] == "budget.threshold_cleared"
    set_status(warehouse, block("10"))  # under 80 %: thresholds under 100 % are never cleared
    assert evaluate(warehouse) == []
    set_status(warehouse, block("21"))
    again = evaluate(warehouse)
    assert [(a.alert_type, a.threshold_percent, a.sequence) for a in again] == [(REACHED, 100, 3)]
    assert len({first[1].alert_id, cleared[0].alert_id, again[0].alert_id}) == 3
    assert evaluate(warehouse) == []


def test_a_notify_budget_is_never_cleared(warehouse):
    set_status(warehouse, Status("cus_acme", "monthly_spend", "6000", "5000"))
    assert [a.threshold_percent for a in evaluate(warehouse)] == [80, 100]
    set_status(warehouse, Status("cus_acme", "monthly_spend", "1000", "5000"))
    assert evaluate(warehouse) == []
    set_status(warehouse, Status("cus_acme", "monthly_spend", "6000", "5000"))
    assert evaluate(warehouse) == []


def test_the_same_alert_gets_the_same_id_in_another_warehouse(warehouse, tmp_path):
    rows = (Status("cus_acme", "monthly_spend", "6000", "5000"), Status("cus_acme", "monthly_spend", "1", "5000"))
    set_status(warehouse, rows[0])
    ids = [a.alert_id for a in evaluate(warehouse)]
    other = connect(tmp_path / "other.duckdb")
    try:
        set_status(other, rows[1])  # another history: its 80 % and 100 % come later, with the same ids
        assert evaluate(other) == []
        set_status(other, rows[0])
        assert [a.alert_id for a in evaluate(other)] == ids
    finally:
        other.close()


def test_without_a_webhook_url_alerts_are_recorded(warehouse):
    set_status(warehouse, Status("cus_acme", "monthly_spend", "4000", "5000"))
    (alert,) = evaluate_alerts(warehouse, evaluated_at=NOW)  # METERING_WEBHOOK_URL unset (fixture)
    assert alert.status == "recorded"
    assert warehouse.execute("SELECT status, attempts FROM ops.budget_alerts").fetchall() == [("recorded", 0)]
    assert "monthly_spend cus_acme 2026-10-01: 80 % (4,000 of 5,000 cents)" in alert.line()


def test_october_rows_outside_the_current_period_are_ignored(warehouse):
    set_status(warehouse, Status("cus_acme", "monthly_spend", "9000", "5000", period_start=OCT, is_current=False))
    assert evaluate(warehouse) == []

"""Stripe billing alerts for quantity budgets (real SDK, the emulator over HTTP, a real DuckDB file)."""

from __future__ import annotations

import uuid
from dataclasses import replace
from decimal import Decimal

from metering_dagster.billing.alerts import alert_title, read_triggered_alerts, sync_billing_alerts
from metering_dagster.billing.objects import sync_stripe_objects
from metering_dagster.billing.retry import STATS

from .conftest import CONTRACT_YAML, needs_emulator, utc, write_contract

pytestmark = needs_emulator

BUDGETS_YAML = """\
budgets:
  - {key: calls_cap, customer: "*", meter: api_calls, quantity: "20", on_exceed: block}
  - {key: tokens_cap, customer: cust_a, meter: input_tokens, quantity: "1000.5"}
  - {key: monthly_spend, customer: "*", spend: "5000"}
"""


def _setup(tmp_path, stripe_conn, con):
    contract = write_contract(tmp_path, CONTRACT_YAML + BUDGETS_YAML)
    objects = sync_stripe_objects(stripe_conn.client, contract, con)
    return contract, objects


def _stripe_alerts(client) -> dict[str, object]:
    return {a.title: a for a in client.v1.billing.alerts.list({"limit": 100}).auto_paging_iter()}


def _recorded(con) -> list[tuple]:
    return con.execute(
        "SELECT budget_key, customer_id, stripe_alert_id, gte, status FROM ops.stripe_billing_alerts ORDER BY ALL"
    ).fetchall()


def test_one_alert_per_whole_quantity_budget_and_nothing_created_the_second_time(tmp_path, stripe_conn, con):
    client = stripe_conn.client
    contract, objects = _setup(tmp_path, stripe_conn, con)
    first = sync_billing_alerts(client, contract, con)
    assert first.created == 2 and set(first.alerts) == {("calls_cap", "cust_a"), ("calls_cap", "cust_b")}
    (skipped,) = first.not_synced
    assert "tokens_cap of cust_a" in skipped and "1000.5" in skipped and "not a whole number" in skipped

    alerts = _stripe_alerts(client)
    for customer_id in ("cust_a", "cust_b"):
        alert = alerts[alert_title("calls_cap", customer_id)]
        ut = alert.usage_threshold
        assert (alert.status, alert.alert_type, ut.gte, ut.recurrence) == ("active", "usage_threshold", 20, "one_time")
        assert ut.meter == objects.stripe_meter_ids["api_calls"]
        assert [f.customer for f in ut.filters] == [objects.stripe_customer_ids[customer_id]]
        assert first.alerts[("calls_cap", customer_id)] == alert.id
    assert [r[:2] + r[3:] for r in _recorded(con)] == [
        ("calls_cap", "cust_a", 20, "active"),
        ("calls_cap", "cust_b", 20, "active"),
    ]

    before = STATS.requests
    second = sync_billing_alerts(client, contract, con)
    assert (second.created, second.archived, second.activated) == (0, 0, 0)
    assert second.alerts == first.alerts and STATS.requests == before  # the recorded mapping is trusted
    assert len(_stripe_alerts(client)) == 2


def test_changed_limit_and_removed_budget_archive_the_old_alert(tmp_path, stripe_conn, con):
    client = stripe_conn.client
    contract, _ = _setup(tmp_path, stripe_conn, con)
    first = sync_billing_alerts(client, contract, con)
    calls_cap = next(b for b in contract.budgets if b.key == "calls_cap")
    own_limit = replace(calls_cap, customer="cust_b", limit=Decimal("35"))
    changed = replace(contract, budgets=(calls_cap, own_limit))
    second = sync_billing_alerts(client, changed, con)
    assert (second.created, second.archived) == (1, 1)
    old, new = first.alerts[("calls_cap", "cust_b")], second.alerts[("calls_cap", "cust_b")]
    assert old != new and second.alerts[("calls_cap", "cust_a")] == first.alerts[("calls_cap", "cust_a")]
    assert client.v1.billing.alerts.retrieve(old).status == "archived"
    assert client.v1.billing.alerts.retrieve(new).usage_threshold.gte == 35

    back = sync_billing_alerts(client, contract, con)  # back to 20: a new alert, not the archived one replayed
    assert (back.created, back.archived) == (1, 1)
    assert back.alerts[("calls_cap", "cust_b")] not in (old, new)
    assert client.v1.billing.alerts.retrieve(back.alerts[("calls_cap", "cust_b")]).status == "active"

    gone = sync_billing_alerts(client, replace(contract, budgets=()), con)
    assert (gone.created, gone.archived, gone.alerts) == (0, 2, {})
    assert _stripe_alerts(client) == {}  # archived alerts are not listed
    assert {r[4] for r in _recorded(con)} == {"archived"}


def test_restored_warehouse_finds_the_alerts_and_reactivates_an_inactive_one(tmp_path, stripe_conn, con):
    client = stripe_conn.client
    contract, _ = _setup(tmp_path, stripe_conn, con)
    first = sync_billing_alerts(client, contract, con)
    client.v1.billing.alerts.deactivate(first.alerts[("calls_cap", "cust_a")])
    con.execute("DELETE FROM ops.stripe_billing_alerts")
    restored = sync_billing_alerts(client, contract, con)
    assert restored.listed and (restored.created, restored.activated) == (0, 1)
    assert restored.alerts == first.alerts
    assert client.v1.billing.alerts.retrieve(first.alerts[("calls_cap", "cust_a")]).status == "active"
    assert len(_recorded(con)) == 2


def _report(client, objects, customer_id: str, value: int, at: int) -> None:
    client.v1.billing.meter_events.create(
        {
            "event_name": "api_calls",
            "identifier": uuid.uuid4().hex,
            "timestamp": at,
            "payload": {"stripe_customer_id": objects.stripe_customer_ids[customer_id], "value": str(value)},
        }
    )


def test_triggered_alerts_are_stored_once_with_budget_and_period(tmp_path, stripe_conn, con):
    client = stripe_conn.client
    contract, objects = _setup(tmp_path, stripe_conn, con)
    synced = sync_billing_alerts(client, contract, con)
    clock = client.v1.test_helpers.test_clocks.retrieve(objects.test_clock_id)
    start = int(clock.frozen_time)  # 2026-10-01, cust_a's anchor
    assert read_triggered_alerts(client, con, contract) == 0

    # someone else's alert on the same meter and customer triggers too: not ours, not stored
    client.v1.billing.alerts.create(
        {
            "title": "finance team",
            "alert_type": "usage_threshold",
            "usage_threshold": {"gte": 5, "meter": objects.stripe_meter_ids["api_calls"], "recurrence": "one_time"},
        }
    )
    later = start + 3 * 86400
    client.v1.test_helpers.test_clocks.advance(clock.id, {"frozen_time": later})
    _report(client, objects, "cust_a", 12, later - 60)
    _report(client, objects, "cust_a", 13, later - 30)
    assert read_triggered_alerts(client, con, contract) == 1
    rows = con.execute(
        """SELECT stripe_alert_id, customer_id, budget_key, meter, value, epoch(triggered_at)::BIGINT,
                  epoch(period_start)::BIGINT FROM stripe_view.billing_alerts_triggered"""
    ).fetchall()
    assert rows == [
        (synced.alerts[("calls_cap", "cust_a")], "cust_a", "calls_cap", "api_calls", Decimal(25), later, start)
    ]
    assert read_triggered_alerts(client, con, contract) == 0  # stored once

    # cust_b is anchored on October 15: its period containing October 4 began on September 15
    _report(client, objects, "cust_b", 20, later)
    assert read_triggered_alerts(client, con, contract) == 1
    (period_start,) = con.execute(
        "SELECT period_start FROM stripe_view.billing_alerts_triggered WHERE customer_id = 'cust_b'"
    ).fetchone()
    assert period_start == utc("2026-09-15T00:00:00Z")  # the contract's period of cust_b containing October 4

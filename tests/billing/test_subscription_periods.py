"""Stripe's billing periods against the contract's, for anchors at month ends.

A subscription created on September 15 for a contract anchored on January 31 must keep billing on the last
day of the month (Stripe's `billing_cycle_anchor_config`), not on the 30th; a subscription that drifted
(created with a plain `billing_cycle_anchor` on September 30, as a hand-made or older one may be) is named by
the `stripe_periods_match_contract` check with both periods.
"""

from __future__ import annotations

import dagster as dg
import pytest

from metering_dagster.billing.client import open_stripe
from metering_dagster.billing.months import epoch
from metering_dagster.contract import load_contract
from metering_dagster.settings import load_settings
from metering_dagster.warehouse import connect

from .conftest import needs_emulator, utc

pytestmark = needs_emulator

CONTRACT = """\
environment: test
currency: usd
grace_period: 1h
test_clock_start: "2026-09-15T05:00:00Z"
meters:
  - key: tokens
    action: inference
    value: metadata.tokens
    aggregation: sum
    price: {model: per_unit, unit_amount_decimal: "0.5"}
customers:
  - {id: cus_eom, billing_anchor: "2026-01-31T10:30:15Z"}
  - {id: cus_ok, billing_anchor: "2026-03-29T05:07:09Z"}
"""


def _sync(dbt_manifest):
    from metering_dagster.defs.billing.assets import stripe_billing_objects
    from metering_dagster.defs.billing.checks import stripe_periods_match_contract
    from metering_dagster.defs.billing.resources import stripe_resource
    from metering_dagster.defs.resources import MeteringResource

    result = dg.materialize(
        [stripe_billing_objects, stripe_periods_match_contract],
        resources={"metering": MeteringResource(), "stripe": stripe_resource()},
    )
    [check] = result.get_asset_check_evaluations()
    return check


def _periods(state) -> list[tuple]:
    con = connect(state / "warehouse.duckdb", read_only=True)
    try:
        return con.execute(
            """SELECT customer_id, current_period_start, current_period_end, billing_day_of_month, problem
               FROM ops.stripe_subscription_periods ORDER BY 1"""
        ).fetchall()
    finally:
        con.close()


@pytest.fixture
def eom_env(metering_env):
    metering_env["contract"].write_text(CONTRACT)
    return metering_env


def test_a_subscription_created_mid_september_bills_the_last_day_of_each_month(eom_env, dbt_manifest):
    check = _sync(dbt_manifest)
    assert check.passed, check.description
    rows = _periods(eom_env["state"])
    assert [(r[0], r[1], r[2], r[3], r[4]) for r in rows] == [
        ("cus_eom", utc("2026-08-31T10:30:15Z"), utc("2026-09-30T10:30:15Z"), 31, None),
        ("cus_ok", utc("2026-08-29T05:07:09Z"), utc("2026-09-29T05:07:09Z"), 29, None),
    ]
    settings = load_settings()
    contract = load_contract(settings.contract_path)
    with open_stripe(settings, contract, environ={}) as conn:
        client = conn.client
        [sub] = [
            s
            for s in client.v1.subscriptions.list({"limit": 100}).auto_paging_iter()
            if s.metadata["metering_customer_id"] == "cus_eom"
        ]
        config = sub.billing_cycle_anchor_config
        assert (config.day_of_month, config.hour, config.minute, config.second) == (31, 10, 30, 15)
        assert sub.start_date == epoch(utc("2026-08-31T10:30:15Z"))  # backdated to the contract period under way
        clock = client.v1.test_helpers.test_clocks.retrieve(sub.test_clock)
        client.v1.test_helpers.test_clocks.advance(clock.id, {"frozen_time": epoch(utc("2026-10-15T00:00:00Z"))})
        item = client.v1.subscriptions.retrieve(sub.id)["items"].data[0]
        assert (item.current_period_start, item.current_period_end) == (
            epoch(utc("2026-09-30T10:30:15Z")),
            epoch(utc("2026-10-31T10:30:15Z")),
        )


def test_a_drifted_subscription_is_named_with_both_periods(eom_env, dbt_manifest, monkeypatch):
    assert _sync(dbt_manifest).passed
    settings = load_settings()
    contract = load_contract(settings.contract_path)
    with open_stripe(settings, contract, environ={}) as conn:
        client = conn.client
        [old] = [
            s
            for s in client.v1.subscriptions.list({"limit": 100}).auto_paging_iter()
            if s.metadata["metering_customer_id"] == "cus_eom"
        ]
        client.v1.subscriptions.cancel(old.id)
        # what a plain billing_cycle_anchor gives on September 15: the next "31st" is September 30, for ever;
        # the period under way is still the contract's, the next one is not
        client.v1.subscriptions.create(
            {
                "customer": old.customer,
                "items": [{"price": i.price.id} for i in old["items"].data],
                "backdate_start_date": epoch(utc("2026-08-31T10:30:15Z")),
                "billing_cycle_anchor": epoch(utc("2026-09-30T10:30:15Z")),
                "proration_behavior": "none",
                "collection_method": "send_invoice",
                "days_until_due": 30,
                "metadata": {"metering_customer_id": "cus_eom"},
            }
        )
    monkeypatch.setenv("METERING_STRIPE_VERIFY_HOURS", "0")  # re-read every customer now
    check = _sync(dbt_manifest)
    assert not check.passed
    assert check.metadata["customers_with_differences"].value == "cus_eom"
    problem = dict((r[0], r[4]) for r in _periods(eom_env["state"]))["cus_eom"]
    assert problem.startswith(
        "Stripe bills [2026-09-30T10:30:15+00:00, 2026-10-30T10:30:15+00:00) where the contract bills "
        "[2026-09-30T10:30:15+00:00, 2026-10-31T10:30:15+00:00)"
    ), problem
    assert "cus_eom" in check.description and "2026-10-30T10:30:15" in check.description

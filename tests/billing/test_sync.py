"""Stripe objects from the contract: created once, found afterwards; a changed price becomes a new one."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC
from decimal import Decimal

from metering_dagster.billing.objects import TEST_CLOCK_NAME, price_lookup_key, sync_stripe_objects
from metering_dagster.contract import Price

from .conftest import needs_emulator

pytestmark = needs_emulator


def test_sync_twice_creates_nothing_the_second_time(stripe_conn, contract, con):
    client = stripe_conn.client
    first = sync_stripe_objects(client, contract, con)
    assert first.created == {
        "test_clocks": 1,
        "meters": 3,
        "products": 3,
        "prices": 3,
        "customers": 2,
        "subscriptions": 2,
    }
    second = sync_stripe_objects(client, contract, con)
    assert second.total_created == 0 and not second.updated
    assert second.stripe_customer_ids == first.stripe_customer_ids

    clock = client.v1.test_helpers.test_clocks.retrieve(first.test_clock_id)
    assert clock.name == TEST_CLOCK_NAME
    assert clock.frozen_time == int(contract.effective_test_clock_start.timestamp())

    meters = {m.event_name: m for m in client.v1.billing.meters.list().auto_paging_iter()}
    assert meters["input_tokens"].default_aggregation.formula == "sum"
    assert meters["api_calls"].default_aggregation.formula == "sum"
    assert meters["storage_gb"].default_aggregation.formula == "last"
    assert meters["input_tokens"].customer_mapping.event_payload_key == "stripe_customer_id"

    for cust in contract.customers:
        stripe_id = first.stripe_customer_ids[cust.id]
        customer = client.v1.customers.retrieve(stripe_id)
        assert customer.metadata["metering_customer_id"] == cust.id
        assert customer.test_clock == first.test_clock_id
        subs = list(client.v1.subscriptions.list({"customer": stripe_id}).auto_paging_iter())
        assert len(subs) == 1
        items = subs[0]["items"].data
        assert sorted(i.price.id for i in items) == sorted(first.stripe_price_ids.values())

    tokens = client.v1.prices.retrieve(first.stripe_price_ids["input_tokens"])
    assert tokens.tiers_mode == "graduated" and tokens.recurring.usage_type == "metered"
    assert tokens.recurring.meter == first.stripe_meter_ids["input_tokens"]
    calls = client.v1.prices.retrieve(first.stripe_price_ids["api_calls"])
    assert calls.transform_quantity.divide_by == 100 and calls.transform_quantity.round == "up"

    counts = con.execute(
        "SELECT (SELECT count(*) FROM ops.stripe_customers), (SELECT count(*) FROM ops.stripe_meters),"
        " (SELECT count(*) FROM ops.stripe_prices), (SELECT count(*) FROM ops.stripe_subscription_items)"
    ).fetchone()
    assert counts == (2, 3, 3, 6)


def test_changed_price_gets_a_new_price_that_takes_the_lookup_key(stripe_conn, contract, con):
    client = stripe_conn.client
    first = sync_stripe_objects(client, contract, con)
    old_price = first.stripe_price_ids["storage_gb"]

    meters = tuple(
        replace(m, price=Price(model="per_unit", currency="usd", unit_amount_decimal=Decimal("15")))
        if m.key == "storage_gb"
        else m
        for m in contract.meters
    )
    changed = replace(contract, meters=meters)
    second = sync_stripe_objects(client, changed, con)
    assert second.created == {"prices": 1}
    assert second.updated == {"subscription_items": 2}
    new_price = second.stripe_price_ids["storage_gb"]
    assert new_price != old_price

    found = list(client.v1.prices.list({"lookup_keys": [price_lookup_key("storage_gb")]}).auto_paging_iter())
    assert [p.id for p in found] == [new_price]
    new = client.v1.prices.retrieve(new_price)
    assert new.metadata["price_fingerprint"] == changed.meter("storage_gb").price.fingerprint
    assert str(new.unit_amount_decimal) == "15"
    assert client.v1.prices.retrieve(old_price).lookup_key is None

    current = dict(
        con.execute("SELECT stripe_price_id, is_current FROM ops.stripe_prices WHERE meter = 'storage_gb'").fetchall()
    )
    assert current == {old_price: False, new_price: True}
    for cust in contract.customers:
        sub_id = con.execute(
            "SELECT stripe_subscription_id FROM ops.stripe_customers WHERE customer_id = ?", [cust.id]
        ).fetchone()[0]
        prices = {i.price.id for i in client.v1.subscriptions.retrieve(sub_id)["items"].data}
        assert new_price in prices and old_price not in prices

    assert sync_stripe_objects(client, changed, con).total_created == 0


def test_a_second_sync_trusts_recent_mappings_and_reverifies_stale_ones(stripe_conn, contract, con, monkeypatch):
    from metering_dagster.billing.retry import STATS

    client = stripe_conn.client
    first = sync_stripe_objects(client, contract, con)
    before = STATS.requests
    second = sync_stripe_objects(client, contract, con)
    # clock, meters, one product per meter, prices: nothing per customer
    assert STATS.requests - before <= 3 + len(contract.meters)
    assert second.trusted_customers == len(contract.customers)
    assert second.stripe_customer_ids == first.stripe_customer_ids

    gone = first.stripe_customer_ids["cust_a"]
    client.v1.customers.delete(gone)
    monkeypatch.setenv("METERING_STRIPE_VERIFY_HOURS", "0")  # every mapping is stale: verified again
    third = sync_stripe_objects(client, contract, con)
    assert third.trusted_customers == 0
    assert third.created["customers"] == 1 and third.stripe_customer_ids["cust_a"] != gone


def test_in_the_grace_period_only_invoices_that_left_draft_are_read(stripe_conn, tmp_path, con):
    """Thousands of drafts wait out the grace period: each sync lists the few that left draft, not them all."""
    from datetime import datetime

    from metering_dagster.billing.clock import advance_test_clock
    from metering_dagster.billing.invoices import refresh_period_invoices

    from .conftest import CONTRACT_YAML, write_contract

    head, _ = CONTRACT_YAML.split("customers:\n")
    contract = write_contract(
        tmp_path,
        head
        + "customers:\n"
        + "".join(f'  - {{id: cust_{n}, billing_anchor: "2026-10-01T00:00:00Z"}}\n' for n in range(6)),
    )
    client = stripe_conn.client
    sync_stripe_objects(client, contract, con)
    advance_test_clock(client, con, contract, datetime(2026, 11, 1, 0, 20, tzinfo=UTC))
    first = sync_stripe_objects(client, contract, con)  # finds the six drafts Stripe made at the period end
    drafts = dict(
        con.execute("SELECT customer_id, stripe_invoice_id FROM ops.period_invoices WHERE status = 'draft'").fetchall()
    )
    assert len(drafts) == 6 and first.stripe_customer_ids

    client.v1.invoices.finalize_invoice(drafts["cust_2"])  # by hand, before its grace period ends
    now = datetime(2026, 11, 1, 0, 30, tzinfo=UTC)
    found = refresh_period_invoices(client, con, now)
    assert [(pi.customer_id, pi.status) for pi in found] == [("cust_2", "open")]  # no draft was read again
    status = dict(con.execute("SELECT customer_id, status FROM ops.period_invoices").fetchall())
    assert status == {**{c: "draft" for c in drafts}, "cust_2": "open"}
    assert con.execute("SELECT count(*) FROM ops.invoiced_lines WHERE customer_id = 'cust_2'").fetchone()[0] == 3

    # Past the grace period the drafts are due: read in full, found final.
    advance_test_clock(client, con, contract, datetime(2026, 11, 1, 1, 30, tzinfo=UTC))
    found = refresh_period_invoices(client, con, datetime(2026, 11, 1, 1, 30, tzinfo=UTC))
    assert sorted(pi.customer_id for pi in found) == sorted(set(drafts) - {"cust_2"})
    assert set(dict(con.execute("SELECT customer_id, status FROM ops.period_invoices").fetchall()).values()) == {"open"}

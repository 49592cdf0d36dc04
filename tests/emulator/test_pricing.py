"""Stripe's documented price examples, exactly: first the pricing rules, then through invoices."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stripe_emulator import pricing

from .conftest import DAY, T0

TIERS = [
    {"up_to": 5, "unit_amount_decimal": "700"},
    {"up_to": 10, "unit_amount_decimal": "650"},
    {"up_to": None, "unit_amount_decimal": "600"},
]
VOLUME = [(1, 700), (5, 3500), (6, 3900), (20, 12000), (25, 15000)]
GRADUATED = [(6, 4150), (20, 12750), (25, 15750)]


@pytest.mark.parametrize("q,cents", VOLUME)
def test_volume_tiers(q, cents):
    price = {"billing_scheme": "tiered", "tiers_mode": "volume"}
    assert pricing.line_amount(price, TIERS, Decimal(q)) == cents


@pytest.mark.parametrize("q,cents", GRADUATED)
def test_graduated_tiers(q, cents):
    price = {"billing_scheme": "tiered", "tiers_mode": "graduated"}
    assert pricing.line_amount(price, TIERS, Decimal(q)) == cents


@pytest.mark.parametrize("minutes,cents", [(0, 0), (1, 1000), (60, 1000), (61, 2000), (600, 10000)])
def test_hourly_from_minutes(minutes, cents):
    price = {
        "billing_scheme": "per_unit",
        "unit_amount_decimal": "1000",
        "transform_quantity": {"divide_by": 60, "round": "up"},
    }
    assert pricing.line_amount(price, None, Decimal(minutes)) == cents


FEE = [
    {"up_to": 100000, "unit_amount_decimal": "0", "flat_amount_decimal": "20000"},
    {"up_to": None, "unit_amount_decimal": "0.1"},
]


@pytest.mark.parametrize(
    "tokens,cents", [(0, 20000), (1, 20000), (100000, 20000), (100001, 20000), (100005, 20001), (150000, 25000)]
)
def test_fee_including_tokens(tokens, cents):
    # 100,001 tokens: $200 + $0.001 = 20000.1 cents -> 20000; 100,005: 20000.5 -> 20001 (half-up)
    price = {"billing_scheme": "tiered", "tiers_mode": "graduated"}
    assert pricing.line_amount(price, FEE, Decimal(tokens)) == cents


def test_zero_falls_in_first_tier_and_negative_is_zero():
    tiers = [
        {"up_to": 10, "unit_amount_decimal": "5", "flat_amount_decimal": "300"},
        {"up_to": None, "unit_amount_decimal": "1", "flat_amount_decimal": "50"},
    ]
    for mode in ("graduated", "volume"):
        price = {"billing_scheme": "tiered", "tiers_mode": mode}
        assert pricing.line_amount(price, tiers, Decimal(0)) == 300
        assert pricing.line_amount(price, tiers, Decimal(-7)) == 300


@given(st.integers(min_value=0, max_value=10**6), st.integers(min_value=0, max_value=10**6))
def test_half_up_rounding_once_per_line(q, unit_millicents):
    unit = Decimal(unit_millicents) / 1000
    price = {"billing_scheme": "per_unit", "unit_amount_decimal": str(unit)}
    exact = Decimal(q) * unit
    got = pricing.line_amount(price, None, Decimal(q))
    assert abs(Decimal(got) - exact) <= Decimal("0.5")
    if exact - int(exact) == Decimal("0.5"):
        assert got == int(exact) + 1


TIER_PARAMS = [
    {"up_to": 5, "unit_amount": 700},
    {"up_to": 10, "unit_amount": 650},
    {"up_to": "inf", "unit_amount": 600},
]


@pytest.mark.parametrize(
    "mode,q,cents", [("volume", q, c) for q, c in VOLUME] + [("graduated", q, c) for q, c in GRADUATED]
)
def test_tier_examples_on_invoices(build, client, mode, q, cents):
    clock, customer, meter, price, sub = build.metered_subscription(
        price_kw={"billing_scheme": "tiered", "tiers_mode": mode, "tiers": TIER_PARAMS}
    )
    build.event(meter, customer, q, T0 + 10)
    assert client.v1.invoices.create_preview({"subscription": sub.id}).total == cents
    build.advance(clock, T0 + 40 * DAY)
    inv = client.v1.invoices.list({"subscription": sub.id}).data[-1]
    assert (inv.status, inv.total, inv.lines.data[0].quantity, inv.lines.data[0].amount) == ("open", cents, q, cents)


def test_hourly_and_fee_examples_on_invoices(build, client):
    meter = build.meter()
    clock, customer, _, hourly, _ = build.metered_subscription(
        meter, price_kw={"unit_amount": 1000, "transform_quantity": {"divide_by": 60, "round": "up"}}
    )
    fee = build.price(
        meter,
        billing_scheme="tiered",
        tiers_mode="graduated",
        tiers=[
            {"up_to": 100000, "unit_amount": 0, "flat_amount": 20000},
            {"up_to": "inf", "unit_amount_decimal": "0.1"},
        ],
    )
    sub2 = client.v1.subscriptions.create({"customer": customer.id, "items": [{"price": fee.id}]})
    build.event(meter, customer, 150000, T0 + 5)
    build.event(meter, customer, 1, T0 + 6)  # 150,001 minutes -> 2501 hours; 150,001 tokens
    assert client.v1.invoices.create_preview({"subscription": sub2.id}).total == 25000  # 25000.1 -> 25000
    build.advance(clock, T0 + 33 * DAY)
    by_price = {
        inv.lines.data[0].pricing.price_details.price: inv.total
        for inv in client.v1.invoices.list({"customer": customer.id}).data
    }
    assert by_price == {hourly.id: 2501 * 1000, fee.id: 25000}


def test_price_object_and_lookup_keys(build, client):
    meter = build.meter()
    key = "lk_" + meter.event_name
    p1 = build.price(meter, unit_amount_decimal="0.25", lookup_key=key)
    assert p1.unit_amount is None and str(p1.unit_amount_decimal) == "0.25" and p1.recurring.meter == meter.id
    with pytest.raises(Exception) as err:
        build.price(meter, unit_amount=1, lookup_key=key)
    assert "lookup key" in str(err.value)
    p2 = build.price(meter, unit_amount=3, lookup_key=key, transfer_lookup_key=True)
    found = client.v1.prices.list({"lookup_keys": [key]}).data
    assert [p.id for p in found] == [p2.id]
    assert client.v1.prices.retrieve(p1.id).lookup_key is None
    tiered = build.price(meter, billing_scheme="tiered", tiers_mode="volume", tiers=TIER_PARAMS)
    assert "tiers" not in tiered.to_dict()
    tiers = client.v1.prices.retrieve(tiered.id, {"expand": ["tiers"]}).tiers
    assert [t.up_to for t in tiers] == [5, 10, None]
    updated = client.v1.prices.update(p2.id, {"metadata": {"a": "b"}, "nickname": "n"})
    assert updated.metadata.to_dict() == {"a": "b"} and updated.nickname == "n"

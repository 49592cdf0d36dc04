"""Fixtures: an emulator on a temporary SQLite file, a stripe SDK client pointed at it, and small builders."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import stripe

from stripe_emulator import EmulatorServer

FIELDS = json.loads((Path(__file__).parent / "data" / "stripe_fields.json").read_text())
T0 = 1735689600  # 2025-01-01T00:00:00Z
DAY = 86400


def make_client(url: str, key: str = "sk_test_emulator", **kw) -> stripe.StripeClient:
    return stripe.StripeClient(key, base_addresses={"api": url, "meter_events": url}, **kw)


def assert_stripe_fields(obj, type_name: str):
    """Every top-level field of Stripe's example object of that type is present."""
    data = obj if isinstance(obj, dict) else obj.to_dict()
    missing = set(FIELDS[type_name]) - set(data)
    assert not missing, f"{type_name} lacks {sorted(missing)}"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with EmulatorServer(tmp_path_factory.mktemp("emu") / "state.sqlite") as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server) -> stripe.StripeClient:
    return make_client(server.url)


class Builder:
    """Creates the objects a billing test needs, each with fresh names."""

    def __init__(self, client: stripe.StripeClient):
        self.c = client

    def clock(self, frozen_time: int = T0):
        return self.c.v1.test_helpers.test_clocks.create({"frozen_time": frozen_time})

    def customer(self, clock=None, **kw):
        params = {"name": "Test customer", **kw}
        if clock is not None:
            params["test_clock"] = clock.id
        return self.c.v1.customers.create(params)

    def meter(self, formula: str = "sum", **kw):
        name = "ev_" + uuid.uuid4().hex[:12]
        return self.c.v1.billing.meters.create(
            {"display_name": name, "event_name": name, "default_aggregation": {"formula": formula}, **kw}
        )

    def price(self, meter=None, **kw):
        params = {"currency": "usd", "product_data": {"name": "Usage"}, **kw}
        if meter is not None:
            params["recurring"] = {"interval": "month", "usage_type": "metered", "meter": meter.id}
        if "unit_amount" not in kw and "unit_amount_decimal" not in kw and "tiers" not in kw:
            params["unit_amount"] = 100
        return self.c.v1.prices.create(params)

    def event(self, meter, customer, value, ts: int, identifier: str | None = None):
        return self.c.v1.billing.meter_events.create(
            {
                "event_name": meter.event_name,
                "timestamp": ts,
                "identifier": identifier or uuid.uuid4().hex,
                "payload": {"stripe_customer_id": customer.id, "value": str(value)},
            }
        )

    def metered_subscription(self, meter=None, price_kw=None, clock_time: int = T0, anchor: int | None = None):
        clock = self.clock(clock_time)
        customer = self.customer(clock)
        meter = meter or self.meter()
        price = self.price(meter, **(price_kw or {}))
        params = {"customer": customer.id, "items": [{"price": price.id}]}
        if anchor is not None:
            params["billing_cycle_anchor"] = anchor
        sub = self.c.v1.subscriptions.create(params)
        return clock, customer, meter, price, sub

    def advance(self, clock, to: int):
        return self.c.v1.test_helpers.test_clocks.advance(clock.id, {"frozen_time": to})


@pytest.fixture(scope="module")
def build(client) -> Builder:
    return Builder(client)

"""The emulator's own bookkeeping: the store's per-transaction read cache (`Tx.lookup`), never older than
what the transaction wrote, and the CPU time spent answering."""

from __future__ import annotations

import pytest
import stripe

from stripe_emulator.storage import Store


def test_a_lookup_sees_the_transactions_own_writes(tmp_path):
    store = Store(tmp_path / "state.sqlite")
    price = {"id": "price_1", "object": "price", "unit_amount_decimal": "2"}
    with store.transaction() as tx:
        tx.insert(price)
        assert tx.lookup("price_1", "price")["unit_amount_decimal"] == "2"
        assert tx.lookup("price_1", "billing.meter") is None  # the type is checked as `get` checks it
        tx.save({**price, "unit_amount_decimal": "3"})
        assert tx.lookup("price_1", "price")["unit_amount_decimal"] == "3"
        tx.delete("price_1")
        assert tx.lookup("price_1", "price") is None
    with store.transaction() as tx:  # a new transaction reads the stored state
        assert tx.lookup("price_1", "price") is None
        assert tx.get("price_1", "price", include_deleted=True)["unit_amount_decimal"] == "3"
    store.close()


def test_the_time_spent_answering_is_counted_per_request(client):
    """`metering bench` reports the emulator's own CPU apart from the pipeline's (stripe_emulator.server.SERVING)."""
    from stripe_emulator.server import SERVING

    requests, cpu = SERVING.requests, SERVING.cpu_seconds
    customer = client.v1.customers.create({"name": "counted"})
    client.v1.customers.retrieve(customer.id)
    with pytest.raises(stripe.InvalidRequestError):  # an error answer is work too
        client.v1.customers.retrieve("cus_missing")
    assert SERVING.requests - requests == 3
    assert SERVING.cpu_seconds > cpu

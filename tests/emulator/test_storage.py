"""The store's per-transaction read cache (`Tx.lookup`): never older than what the transaction wrote."""

from __future__ import annotations

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

"""The emulator's own bookkeeping: the store's per-transaction read cache (`Tx.lookup`), never older than
what the transaction wrote; saves that rewrite the filter columns only when they changed; the CPU time
spent answering; how long the lines of invoice previews are kept."""

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


def test_a_save_keeps_the_filter_columns_in_step_with_the_document(tmp_path):
    """A save that changes only the document leaves the indexed columns alone; one that changes them rewrites them."""
    store = Store(tmp_path / "state.sqlite")
    with store.transaction() as tx:
        tx.insert({"id": "in_1", "object": "invoice", "customer": "cus_1", "status": "draft", "total": 0})
    with store.transaction() as tx:
        (draft,) = tx.find("invoice", customer="cus_1")
        tx.save({**draft, "total": 500})  # the document only
        assert tx.find("invoice", status="draft")[0]["total"] == 500
        tx.save({**tx.get("in_1"), "status": "open"})  # an indexed field
        assert tx.find("invoice", status="draft") == []
    with store.transaction() as tx:
        page, _ = tx.page("invoice", limit=10, starting_after=None, ending_before=None, status="open")
        assert [(i["id"], i["total"]) for i in page] == [("in_1", 500)]
        tx.save({**page[0], "customer": "cus_2"})
        assert [i["id"] for i in tx.find("invoice", customer="cus_2")] == ["in_1"]
        assert tx.find("invoice", customer="cus_1") == []
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


def test_preview_lines_expire_by_age_and_count(tmp_path):
    """Kept for the customer's newest previews and for a bounded time: a run previews every customer."""
    store = Store(tmp_path / "state.sqlite")
    lines = [{"id": "il_1", "amount": 5}]
    with store.transaction() as tx:
        tx.keep_preview("upcoming_old", "cus_1", lines, created=1000, expire_before=0, keep_per_customer=2)
        tx.keep_preview("upcoming_a", "cus_2", lines, created=5000, expire_before=0, keep_per_customer=2)
        assert tx.preview_lines("upcoming_old") == lines
        tx.keep_preview("upcoming_b", "cus_2", lines, created=5001, expire_before=2000, keep_per_customer=2)
        assert tx.preview_lines("upcoming_old") is None  # older than the expiry
        tx.keep_preview("upcoming_c", "cus_2", lines, created=5002, expire_before=2000, keep_per_customer=2)
        assert [tx.preview_lines(i) is not None for i in ("upcoming_a", "upcoming_b", "upcoming_c")] == [
            False,
            True,
            True,
        ]
    store.close()

"""Period close on test clocks: draft, grace period, finalization, late usage, auto_advance, anchors."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import stripe

from stripe_emulator import EmulatorServer

from .conftest import DAY, T0, Builder, assert_stripe_fields, make_client

FEB1 = 1738368000  # T0 + 31 days
HOUR = 3600


def _invoices(client, sub):
    return sorted(client.v1.invoices.list({"subscription": sub.id, "limit": 100}).data, key=lambda i: i.period_start)


def test_period_close_grace_and_late_usage(build, client):
    clock, cust, meter, price, sub = build.metered_subscription()
    item = sub["items"].data[0]
    assert (item.current_period_start, item.current_period_end) == (T0, FEB1)
    build.event(meter, cust, 4, T0 + 10)
    pending = client.v1.invoice_items.create(
        {"customer": cust.id, "amount": 250, "currency": "usd", "description": "setup fee"}
    )
    assert_stripe_fields(pending, "invoiceitem")
    build.advance(clock, FEB1 + 60)
    build.event(meter, cust, 100, FEB1)  # belongs to the next period [FEB1, ...)
    (inv,) = _invoices(client, sub)
    assert_stripe_fields(inv, "invoice")
    assert (inv.status, inv.billing_reason, inv.period_start, inv.period_end, inv.auto_advance) == (
        "draft",
        "subscription_cycle",
        T0,
        FEB1,
        True,
    )
    metered, fee = client.v1.invoices.line_items.list(inv.id).data
    assert_stripe_fields(metered, "line_item")
    assert (metered.quantity, metered.amount, metered.period.start, metered.period.end) == (4, 400, T0, FEB1)
    assert metered.pricing.price_details.price == price.id
    assert client.v1.prices.retrieve(price.id).recurring.meter == meter.id
    assert (fee.amount, fee.parent.invoice_item_details.invoice_item) == (250, pending.id)
    assert client.v1.invoice_items.retrieve(pending.id).invoice == inv.id
    build.event(meter, cust, 6, FEB1 - 5)  # reported during the grace period: still counts
    assert client.v1.invoices.retrieve(inv.id).total == 1000 + 250
    build.advance(clock, FEB1 + HOUR)
    inv = client.v1.invoices.retrieve(inv.id)
    assert (inv.status, inv.total, inv.number is not None) == ("open", 1250, True)
    clock2 = client.v1.test_helpers.test_clocks.retrieve(clock.id)
    assert clock2.status == "ready"
    build.event(meter, cust, 50, FEB1 - 1)  # after finalization: never changes the invoice
    assert client.v1.invoices.retrieve(inv.id).total == 1250
    assert client.v1.invoices.line_items.list(inv.id).data[0].quantity == 10


def test_negative_usage_bills_zero_and_preview(build, client):
    clock, cust, meter, price, sub = build.metered_subscription()
    build.event(meter, cust, 3, T0 + 1)
    build.event(meter, cust, -8, T0 + 2)
    preview = client.v1.invoices.create_preview({"subscription": sub.id})
    assert (preview.total, preview.lines.data[0].quantity) == (0, 0)
    assert_stripe_fields(preview, "invoice")


def test_auto_advance_false_stays_draft(build, client):
    clock, cust, meter, price, sub = build.metered_subscription()
    build.event(meter, cust, 2, T0 + 1)
    build.advance(clock, FEB1 + 1)
    (inv,) = _invoices(client, sub)
    client.v1.invoices.update(inv.id, {"auto_advance": False})
    build.advance(clock, FEB1 + 2 * HOUR)
    assert client.v1.invoices.retrieve(inv.id).status == "draft"
    client.v1.invoices.update(inv.id, {"auto_advance": True})
    build.advance(clock, FEB1 + 3 * HOUR)
    assert client.v1.invoices.retrieve(inv.id).status == "open"


def test_finalize_and_void_explicitly(build, client):
    clock, cust, meter, price, sub = build.metered_subscription()
    build.event(meter, cust, 2, T0 + 1)
    build.advance(clock, FEB1 + 1)
    (inv,) = _invoices(client, sub)
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.invoices.void_invoice(inv.id)
    fin = client.v1.invoices.finalize_invoice(inv.id)
    assert fin.status == "open" and fin.status_transitions.finalized_at == FEB1 + 1
    with pytest.raises(stripe.InvalidRequestError, match="already finalized"):
        client.v1.invoices.finalize_invoice(inv.id)
    assert client.v1.invoices.void_invoice(inv.id).status == "void"
    assert [i.id for i in client.v1.invoices.list({"customer": cust.id, "status": "void"}).data] == [inv.id]


def test_several_periods_in_one_advance(build, client):
    clock, cust, meter, price, sub = build.metered_subscription()
    for month_start, value in ((T0, 1), (FEB1, 2)):
        build.advance(clock, month_start + 5)
        build.event(meter, cust, value, month_start + 5)
    build.advance(clock, T0 + 100 * DAY)
    invs = _invoices(client, sub)
    assert [(i.period_start, i.total, i.status) for i in invs] == [
        (T0, 100, "open"),
        (FEB1, 200, "open"),
        (1740787200, 0, "paid"),
    ]
    assert client.v1.subscriptions.retrieve(sub.id).latest_invoice == invs[-1].id


def test_anchor_on_the_31st_bills_on_last_day_of_shorter_months(build, client):
    jan31 = int(datetime(2025, 1, 31, 12, tzinfo=UTC).timestamp())
    clock, cust, meter, price, sub = build.metered_subscription(clock_time=jan31 - DAY, anchor=jan31)
    build.advance(clock, int(datetime(2025, 6, 1, tzinfo=UTC).timestamp()))
    ends = [datetime.fromtimestamp(i.period_end, UTC).strftime("%m-%d") for i in _invoices(client, sub)]
    assert ends == ["01-31", "02-28", "03-31", "04-30", "05-31"]
    assert_stripe_fields(client.v1.subscriptions.retrieve(sub.id), "subscription")
    assert_stripe_fields(sub["items"].data[0], "subscription_item")


def test_grace_period_is_configurable(tmp_path):
    with EmulatorServer(tmp_path / "g.sqlite", grace_period_seconds=60) as srv:
        c = make_client(srv.url)
        b = Builder(c)
        clock, cust, meter, price, sub = b.metered_subscription()
        b.advance(clock, FEB1 + 59)
        assert _invoices(c, sub)[0].status == "draft"
        b.advance(clock, FEB1 + 60)
        assert _invoices(c, sub)[0].status == "paid"  # nothing used: $0 invoices are paid on finalization


def test_invoice_filters_and_lists(build, client):
    clock, cust, meter, price, sub = build.metered_subscription()
    build.event(meter, cust, 1, T0 + 1)
    build.advance(clock, FEB1 + 1)
    (draft,) = client.v1.invoices.list({"customer": cust.id, "status": "draft"}).data
    assert draft.subscription == sub.id
    assert client.v1.invoices.list({"customer": cust.id, "status": "open"}).data == []
    assert [c.id for c in client.v1.customers.list({"test_clock": clock.id}).data] == [cust.id]
    assert client.v1.subscriptions.list({"customer": cust.id}).data[0].id == sub.id
    ii = client.v1.invoice_items.create({"customer": cust.id, "invoice": draft.id, "amount": 5, "currency": "usd"})
    assert client.v1.invoices.retrieve(draft.id).total == 105
    client.v1.invoice_items.delete(ii.id)
    assert client.v1.invoices.retrieve(draft.id).total == 100
    manual = client.v1.invoices.create({"customer": cust.id})
    assert (manual.billing_reason, manual.status) == ("manual", "draft")
    canceled = client.v1.subscriptions.cancel(sub.id)
    assert canceled.status == "canceled"
    assert client.v1.test_helpers.test_clocks.delete(clock.id).deleted


def test_invoice_list_filters_on_created(client):
    """`created[gte]` / `created[lt]` as Stripe documents them: bulk reads of recent invoices."""
    customer = client.v1.customers.create({"name": "created-filter"})
    made = []
    for _ in range(3):
        made.append(client.v1.invoices.create({"customer": customer.id}))
    stamps = sorted(i.created for i in made)
    every = [
        i.id
        for i in client.v1.invoices.list({"customer": customer.id, "created": {"gte": stamps[0]}}).auto_paging_iter()
    ]
    assert sorted(every) == sorted(i.id for i in made)
    none = list(client.v1.invoices.list({"customer": customer.id, "created": {"lt": stamps[0]}}).auto_paging_iter())
    assert none == []
    exact = list(client.v1.invoices.list({"customer": customer.id, "created": stamps[0]}).auto_paging_iter())
    assert {i.created for i in exact} == {stamps[0]}

"""Subscription item changes through the real SDK: moving an item to a new price (`POST /v1/subscriptions/{id}`
with `items`), adding and removing items, the `/v1/subscription_items` endpoints, and Stripe's refusals."""

from __future__ import annotations

import pytest
import stripe

from .conftest import DAY, T0, assert_stripe_fields

FEB1 = T0 + 31 * DAY
MAR1 = FEB1 + 28 * DAY
HOUR = 3600


def _invoices(client, sub):
    return sorted(client.v1.invoices.list({"subscription": sub.id, "limit": 100}).data, key=lambda i: i.period_start)


def _lines(client, inv):
    return client.v1.invoices.line_items.list(inv.id, {"limit": 100}).data


def _items(client, sub_id):
    return list(client.v1.subscription_items.list({"subscription": sub_id}).auto_paging_iter())


def _error(call):
    with pytest.raises(stripe.InvalidRequestError) as err:
        call()
    return err.value.http_status, err.value.json_body["error"]


def test_moved_item_bills_the_next_period_on_the_new_price(build, client):
    clock, cust, meter, old, sub = build.metered_subscription()  # $1.00 per unit
    (item,) = sub["items"].data
    build.advance(clock, T0 + 6 * DAY)
    build.event(meter, cust, 10, T0 + 5 * DAY)
    build.advance(clock, FEB1 + 10 * DAY)
    build.event(meter, cust, 1000, FEB1 + 5 * DAY)  # before the change: billed on the new price too

    new = build.price(meter, unit_amount_decimal="2.5")  # 2.5 cents per unit
    sub = client.v1.subscriptions.update(
        sub.id, {"items": [{"id": item.id, "price": new.id}], "proration_behavior": "none"}
    )
    (moved,) = sub["items"].data
    assert (moved.id, moved.price.id, moved.plan.id) == (item.id, new.id, new.id)
    assert moved.quantity is None and moved.current_period_end == MAR1
    assert_stripe_fields(moved, "subscription_item")
    got = client.v1.subscription_items.retrieve(item.id)
    assert got.price.id == new.id and got.subscription == sub.id
    assert_stripe_fields(got, "subscription_item")
    assert [s.id for s in client.v1.subscriptions.list({"price": new.id}).data] == [sub.id]
    assert client.v1.subscriptions.list({"price": old.id, "customer": cust.id}).data == []

    build.advance(clock, FEB1 + 20 * DAY)
    build.event(meter, cust, 234, FEB1 + 19 * DAY)
    build.advance(clock, MAR1 + 2 * HOUR)
    first, second = _invoices(client, sub)
    (line1,) = _lines(client, first)  # closed before the change: the old price
    assert (line1.pricing.price_details.price, line1.quantity, line1.amount) == (old.id, 10, 1000)
    assert first.status == "open" and first.total == 1000
    (line2,) = _lines(client, second)
    assert line2.pricing.price_details.price == new.id
    assert line2.parent.subscription_item_details.subscription_item == item.id
    assert (line2.quantity, line2.amount) == (1234, 3085)  # 1234 × 2.5¢ = 3085¢ exactly
    assert (second.period_start, second.period_end) == (FEB1, MAR1)
    assert second.status == "open" and second.total == 3085


def test_add_and_delete_items_through_the_subscription(build, client):
    clock, cust, meter_a, price_a, sub = build.metered_subscription()
    (item_a,) = sub["items"].data
    meter_b = build.meter()
    price_b = build.price(meter_b, unit_amount=3)
    build.advance(clock, T0 + 10 * DAY)
    sub = client.v1.subscriptions.update(
        sub.id, {"items": [{"price": price_b.id}], "proration_behavior": "create_prorations"}
    )
    assert [i.price.id for i in sub["items"].data] == [price_a.id, price_b.id]
    item_b = sub["items"].data[1]
    assert (item_b.created, item_b.current_period_start, item_b.current_period_end) == (T0 + 10 * DAY,) * 2 + (FEB1,)
    assert item_b.subscription == sub.id and item_b.id.startswith("si_")
    assert [i.id for i in _items(client, sub.id)] == [item_a.id, item_b.id]  # oldest first
    page = client.v1.subscription_items.list({"subscription": sub.id, "limit": 1})
    assert [i.id for i in page.data] == [item_a.id] and page.has_more
    assert page.url == f"/v1/subscription_items?subscription={sub.id}"
    page = client.v1.subscription_items.list({"subscription": sub.id, "limit": 1, "starting_after": item_a.id})
    assert [i.id for i in page.data] == [item_b.id] and not page.has_more

    build.advance(clock, T0 + 12 * DAY)
    build.event(meter_a, cust, 5, T0 + 11 * DAY)
    build.event(meter_b, cust, 7, T0 + 11 * DAY)
    sub = client.v1.subscriptions.update(
        sub.id, {"items": [{"id": item_a.id, "deleted": True}], "proration_behavior": "always_invoice"}
    )
    assert [i.id for i in sub["items"].data] == [item_b.id]
    status, err = _error(lambda: client.v1.subscription_items.retrieve(item_a.id))
    assert status == 404 and err["message"] == f"No such subscription_item: '{item_a.id}'"

    build.advance(clock, FEB1 + 2 * HOUR)
    (inv,) = _invoices(client, sub)
    (line,) = _lines(client, inv)  # only the items the subscription has at the close
    assert (line.pricing.price_details.price, line.quantity, line.amount) == (price_b.id, 7, 21)
    assert inv.total == 21


def test_subscription_item_endpoints(build, client):
    clock, cust, meter, price, sub = build.metered_subscription()
    other_meter = build.meter()
    p1 = build.price(other_meter, unit_amount=4)
    p2 = build.price(other_meter, unit_amount=6)
    created = client.v1.subscription_items.create(
        {"subscription": sub.id, "price": p1.id, "metadata": {"k": "v"}, "proration_behavior": "none"}
    )
    assert_stripe_fields(created, "subscription_item")
    assert (created.object, created.subscription, created.price.id) == ("subscription_item", sub.id, p1.id)
    assert created.metadata.to_dict() == {"k": "v"}
    updated = client.v1.subscription_items.update(created.id, {"price": p2.id, "proration_behavior": "none"})
    assert (updated.id, updated.price.id, updated.plan.amount) == (created.id, p2.id, 6)
    assert client.v1.subscription_items.retrieve(created.id).price.id == p2.id
    assert [i.price.id for i in client.v1.subscriptions.retrieve(sub.id)["items"].data] == [price.id, p2.id]

    build.advance(clock, T0 + 2 * DAY)
    build.event(other_meter, cust, 10, T0 + DAY)
    build.advance(clock, FEB1 + 2 * HOUR)
    (inv,) = _invoices(client, sub)
    assert sorted((ln.pricing.price_details.price, ln.amount) for ln in _lines(client, inv)) == sorted(
        [(price.id, 0), (p2.id, 60)]
    )

    gone = client.v1.subscription_items.delete(created.id, {"proration_behavior": "none"})
    assert gone.to_dict() == {"id": created.id, "object": "subscription_item", "deleted": True}
    assert [i.id for i in _items(client, sub.id)] == [sub["items"].data[0].id]
    again = client.v1.subscription_items.create({"subscription": sub.id, "price": p1.id})  # the price is free again
    assert again.id != created.id and again.current_period_start == FEB1 + 2 * HOUR


def test_licensed_item_quantity(build, client):
    clock = build.clock()
    cust = build.customer(clock)
    seat = build.price(recurring={"interval": "month"}, unit_amount=500)
    sub = client.v1.subscriptions.create({"customer": cust.id, "items": [{"price": seat.id, "quantity": 2}]})
    (item,) = sub["items"].data
    assert item.quantity == 2
    sub = client.v1.subscriptions.update(sub.id, {"items": [{"id": item.id, "quantity": 3}]})
    assert sub["items"].data[0].quantity == 3
    build.advance(clock, FEB1 + 2 * HOUR)
    (inv,) = _invoices(client, sub)
    assert [(ln.quantity, ln.amount) for ln in _lines(client, inv)] == [(3, 1500)]


def test_item_change_errors(build, client):
    clock, cust, meter, price, sub = build.metered_subscription()
    (item,) = sub["items"].data
    other = build.price(meter, unit_amount=7)

    def update(items, **kw):
        return lambda: client.v1.subscriptions.update(sub.id, {"items": items, **kw})

    status, err = _error(update([{"id": "si_AAAAAAAAAAAAAA", "price": other.id}]))
    assert (status, err["code"], err["param"]) == (404, "resource_missing", "items[0][id]")
    assert err["message"] == "No such subscription_item: 'si_AAAAAAAAAAAAAA'"
    status, err = _error(lambda: client.v1.subscription_items.retrieve("si_nope"))
    assert status == 404 and err["message"] == "Invalid subscription_item id: si_nope"
    assert "code" not in err and "param" not in err

    one_time = build.price()
    status, err = _error(update([{"id": item.id, "price": one_time.id}]))
    assert (status, err["param"]) == (400, "items[0][price]")
    assert err["message"] == (
        "The price specified is set to `type=one_time` but this field only accepts prices with `type=recurring`."
    )

    eur = build.price(meter, currency="eur")
    status, err = _error(update([{"price": eur.id}]))
    assert (status, err["param"]) == (400, "items[0][price]")
    assert err["message"] == "The price specified only supports `eur`. This doesn't match the expected currency: `usd`."
    status, err = _error(lambda: client.v1.subscription_items.create({"subscription": sub.id, "price": eur.id}))
    assert err["param"] == "price"

    yearly = build.price(recurring={"interval": "year", "usage_type": "metered", "meter": meter.id})
    status, err = _error(update([{"price": yearly.id}]))
    assert status == 400 and "Found mismatch in interval field" in err["message"]

    status, err = _error(update([{"price": price.id}]))
    assert (status, err["param"]) == (400, "plan")
    assert err["message"].startswith(
        f"A new item with Price {price.id} can't be added to this Subscription because "
        f"an existing Subscription Item {item.id} is already using that Price."
    )
    status, err = _error(lambda: client.v1.subscription_items.create({"subscription": sub.id, "price": price.id}))
    assert (status, err["param"]) == (400, "plan")
    sub2 = client.v1.subscriptions.update(sub.id, {"items": [{"price": other.id}]})
    status, err = _error(update([{"id": item.id, "price": other.id}]))
    assert (status, err["param"]) == (400, "plan") and other.id in err["message"]
    # swapping the prices of two items in one request is fine
    a, b = sub2["items"].data
    swapped = client.v1.subscriptions.update(
        sub.id, {"items": [{"id": a.id, "price": other.id}, {"id": b.id, "price": price.id}]}
    )
    assert [(i.id, i.price.id) for i in swapped["items"].data] == [(a.id, other.id), (b.id, price.id)]
    status, err = _error(
        lambda: client.v1.subscriptions.create(
            {"customer": cust.id, "items": [{"price": price.id}, {"price": price.id}]}
        )
    )
    assert (status, err["param"]) == (400, "plan")

    status, err = _error(update([{"id": a.id, "deleted": True}, {"id": b.id, "deleted": True}]))
    assert status == 400 and err["message"].startswith("A subscription must have at least one active plan.")
    status, err = _error(update([{"id": a.id, "price": price.id}], proration_behavior="sometimes"))
    assert (status, err["param"]) == (400, "proration_behavior")
    status, err = _error(lambda: client.v1.subscription_items.list({}))
    assert (status, err["code"], err["message"]) == (400, "parameter_missing", "Missing required param: subscription.")
    # nothing above changed the subscription
    assert [(i.id, i.price.id) for i in client.v1.subscriptions.retrieve(sub.id)["items"].data] == [
        (a.id, other.id),
        (b.id, price.id),
    ]

    client.v1.subscriptions.cancel(sub.id)
    status, err = _error(lambda: client.v1.subscription_items.create({"subscription": sub.id, "price": eur.id}))
    assert (status, err["code"], err["param"]) == (404, "resource_missing", "subscription")
    status, err = _error(update([{"id": a.id, "price": price.id}]))
    assert status == 400 and "canceled subscription" in err["message"]

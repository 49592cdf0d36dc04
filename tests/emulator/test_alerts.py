"""Billing alerts (usage_threshold, one_time) and the `billing.alert.triggered` events they record."""

from __future__ import annotations

import uuid

import pytest
import stripe

from .conftest import DAY, T0, make_client

# Top-level fields of Stripe's `billing.alert` and `billing.alert_triggered` (Stripe's API reference; the
# fixtures file has no example of either).
ALERT_FIELDS = {"alert_type", "id", "livemode", "object", "status", "title", "usage_threshold"}
TRIGGERED_FIELDS = {"alert", "created", "customer", "external_customer_id", "livemode", "object", "value"}
PERIOD_END = T0 + 31 * DAY  # a subscription created at T0 without an anchor bills [Jan 1, Feb 1)


def _alert(client, meter, gte: int, customer=None, **kw):
    threshold = {"gte": gte, "meter": meter.id, "recurrence": "one_time"}
    if customer is not None:
        threshold["filters"] = [{"type": "customer", "customer": customer.id}]
    params = {"title": "usage alert", "alert_type": "usage_threshold", "usage_threshold": threshold, **kw}
    return client.v1.billing.alerts.create(params)


def _triggered(client, alert) -> list:
    events = client.v1.events.list({"type": "billing.alert.triggered", "limit": 100}).auto_paging_iter()
    return [e for e in events if e.data.object.alert.id == alert.id]


def test_alert_lifecycle_list_filters_and_pagination(build, client):
    meter, other = build.meter(), build.meter()
    customer = build.customer(build.clock())
    alert = _alert(client, meter, 10, customer)
    assert ALERT_FIELDS <= set(alert.to_dict())
    assert (alert.object, alert.status, alert.alert_type) == ("billing.alert", "active", "usage_threshold")
    ut = alert.usage_threshold
    assert (ut.gte, ut.meter, ut.recurrence) == (10, meter.id, "one_time")
    assert [(f.type, f.customer) for f in ut.filters] == [("customer", customer.id)]
    assert client.v1.billing.alerts.retrieve(alert.id).title == "usage alert"

    more = [_alert(client, meter, gte) for gte in (20, 30)]
    _alert(client, other, 5)
    page = client.v1.billing.alerts.list({"meter": meter.id, "alert_type": "usage_threshold", "limit": 2})
    assert [a.id for a in page.data] == [more[1].id, more[0].id] and page.has_more  # newest first
    rest = client.v1.billing.alerts.list({"meter": meter.id, "limit": 2, "starting_after": page.data[-1].id})
    assert [a.id for a in rest.data] == [alert.id] and not rest.has_more

    assert client.v1.billing.alerts.deactivate(alert.id).status == "inactive"
    assert client.v1.billing.alerts.activate(alert.id).status == "active"
    assert client.v1.billing.alerts.archive(alert.id).status == "archived"
    assert client.v1.billing.alerts.retrieve(alert.id).status == "archived"
    listed = client.v1.billing.alerts.list({"meter": meter.id, "limit": 100}).data
    assert alert.id not in [a.id for a in listed]  # archiving removes it from the list
    for move in (client.v1.billing.alerts.activate, client.v1.billing.alerts.deactivate):
        with pytest.raises(stripe.InvalidRequestError, match="archived") as err:
            move(alert.id)
        assert err.value.http_status == 400
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.billing.alerts.retrieve("alrt_nope")
    assert err.value.http_status == 404 and err.value.code == "resource_missing"


@pytest.mark.parametrize(
    "change,param",
    [
        ({"title": None}, "title"),
        ({"title": "x" * 257}, "title"),
        ({"alert_type": "spend_threshold"}, "alert_type"),
        ({"usage_threshold": None}, "usage_threshold"),
        ({"gte": 0}, "usage_threshold[gte]"),
        ({"gte": "1.5"}, "usage_threshold[gte]"),
        ({"meter": "mtr_nope"}, "usage_threshold[meter]"),
        ({"recurrence": "daily"}, "usage_threshold[recurrence]"),
        ({"filters": [{"type": "customer", "customer": "cus_nope"}]}, "usage_threshold[filters][0][customer]"),
        ({"filters": [{"type": "customer"}]}, "usage_threshold[filters][0][customer]"),
        ({"filters": [{"type": "tenant", "customer": "x"}]}, "usage_threshold[filters][0][type]"),
        ({"filters": "two"}, "usage_threshold[filters]"),
    ],
)
def test_create_refuses_invalid_params_naming_them(build, client, change, param):
    meter, customer = build.meter(), build.customer()
    threshold = {"gte": 10, "meter": meter.id, "recurrence": "one_time"}
    params = {"title": "alert", "alert_type": "usage_threshold", "usage_threshold": threshold}
    for key, value in change.items():
        if key == "filters" and value == "two":
            value = [{"type": "customer", "customer": customer.id}] * 2
        target = params if key in params else threshold
        if value is None:
            target.pop(key)
        else:
            target[key] = value
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.billing.alerts.create(params)
    assert err.value.http_status == 400 and err.value.param == param


def test_inactive_meter_is_refused(build, client):
    meter = build.meter()
    client.v1.billing.meters.deactivate(meter.id)
    with pytest.raises(stripe.InvalidRequestError) as err:
        _alert(client, meter, 10)
    assert err.value.param == "usage_threshold[meter]"


def test_triggers_once_per_customer_in_its_clock_time(build, client):
    clock, customer, meter, _, _ = build.metered_subscription()
    alert = _alert(client, meter, 10, customer)
    build.advance(clock, T0 + DAY)
    build.event(meter, customer, 6, T0 + DAY - 60)
    assert _triggered(client, alert) == []
    build.advance(clock, T0 + 2 * DAY)
    build.event(meter, customer, 4, T0 + 2 * DAY - 60)  # reaches gte exactly: 10
    (event,) = _triggered(client, alert)
    assert event.type == "billing.alert.triggered" and event.created == T0 + 2 * DAY
    obj = event.data.object
    assert TRIGGERED_FIELDS <= set(obj.to_dict())
    assert (obj.object, obj.customer, obj.value, obj.created, obj.livemode) == (
        "billing.alert_triggered",
        customer.id,
        10,
        T0 + 2 * DAY,
        False,
    )
    assert obj.alert.id == alert.id and obj.alert.usage_threshold.gte == 10
    assert client.v1.events.retrieve(event.id).data.object.value == 10
    build.event(meter, customer, 50, T0 + 2 * DAY - 30)
    build.advance(clock, PERIOD_END + DAY)  # the next period: one_time means once per customer, ever
    build.event(meter, customer, 50, PERIOD_END + 60)
    assert len(_triggered(client, alert)) == 1


def test_only_active_alerts_and_usage_reported_after_creation_count(build, client):
    clock, customer, meter, _, _ = build.metered_subscription()
    build.advance(clock, T0 + DAY)
    build.event(meter, customer, 15, T0 + 60)  # before the alert: does not count
    alert = _alert(client, meter, 10, customer)
    build.event(meter, customer, 5, T0 + 120)
    assert _triggered(client, alert) == []
    client.v1.billing.alerts.deactivate(alert.id)
    build.event(meter, customer, 5, T0 + 180)  # 10 since creation, but the alert is inactive
    assert _triggered(client, alert) == []
    client.v1.billing.alerts.activate(alert.id)
    build.event(meter, customer, 1, T0 + 240)
    (event,) = _triggered(client, alert)
    assert event.data.object.value == 11


def test_outside_the_current_period_does_not_count_and_a_clock_advance_evaluates(build, client):
    clock, customer, meter, _, _ = build.metered_subscription(clock_time=T0)
    build.advance(clock, PERIOD_END - 60)
    alert = _alert(client, meter, 10, customer)
    build.event(meter, customer, 12, PERIOD_END + 120)  # stamped 3 minutes ahead: the next period's usage
    assert _triggered(client, alert) == []
    build.advance(clock, PERIOD_END + 3600)
    (event,) = _triggered(client, alert)
    assert (event.created, event.data.object.value) == (PERIOD_END + 3600, 12)


def test_last_formula_on_the_stream_and_an_alert_for_every_customer(server, build, client):
    meter = build.meter("last")
    customers = []
    for _ in range(3):
        clock, customer, _, _, _ = build.metered_subscription(meter=meter)
        build.advance(clock, T0 + DAY)
        customers.append(customer)
    alert = _alert(client, meter, 10)  # no filter: every customer, once each
    session = client.v2.billing.meter_event_session.create()
    stream = make_client(server.url, session.authentication_token)

    def send(customer, value, at):
        return {
            "event_name": meter.event_name,
            "identifier": uuid.uuid4().hex,
            "timestamp": at,
            "payload": {"stripe_customer_id": customer.id, "value": str(value)},
        }

    stream.v2.billing.meter_event_stream.create(
        {
            "events": [
                send(customers[0], 12, "2025-01-01T10:00:00Z"),
                send(customers[0], 3, "2025-01-01T11:00:00Z"),  # the last value is 3: below
                send(customers[1], 4, "2025-01-01T10:00:00Z"),
                send(customers[1], 11, "2025-01-01T11:00:00Z"),
            ]
        }
    )
    assert [e.data.object.customer for e in _triggered(client, alert)] == [customers[1].id]
    build.event(meter, customers[0], 10, T0 + 12 * 3600)
    build.event(meter, customers[2], 30, T0 + 12 * 3600)
    events = _triggered(client, alert)
    assert [e.data.object.customer for e in events] == [customers[2].id, customers[0].id, customers[1].id]
    assert [e.data.object.value for e in events] == [30, 10, 11]


def test_events_list_filters_and_pagination(build, client):
    clock, customer, meter, _, _ = build.metered_subscription(clock_time=T0 + 10 * DAY)
    alerts = [_alert(client, meter, gte, customer) for gte in (1, 2, 3)]
    build.event(meter, customer, 5, T0 + 10 * DAY)
    ids = {a.id for a in alerts}
    listed = [
        e
        for e in client.v1.events.list({"type": "billing.alert.triggered", "limit": 100}).auto_paging_iter()
        if e.data.object.alert.id in ids
    ]
    assert len(listed) == 3 and all(e.object == "event" for e in listed)
    newest = listed[0]
    page = client.v1.events.list({"type": "billing.alert.*", "limit": 1})
    assert page.data[0].id == newest.id and page.has_more
    assert client.v1.events.list({"limit": 1, "starting_after": newest.id}).data[0].id == listed[1].id
    assert client.v1.events.list({"type": "invoice.created", "limit": 100}).data == []
    after = client.v1.events.list({"type": "billing.alert.triggered", "created": {"gte": T0 + 10 * DAY}}).data
    assert {e.id for e in listed} <= {e.id for e in after}
    later = client.v1.events.list({"type": "billing.alert.triggered", "created": {"gte": T0 + 10 * DAY + 1}}).data
    assert not {e.id for e in listed} & {e.id for e in later}

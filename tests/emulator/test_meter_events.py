"""Meter events v1 and v2, the v2 session and stream, validation rules, cancellations."""

from __future__ import annotations

import time
import uuid

import pytest
import stripe

from .conftest import DAY, T0, assert_stripe_fields, make_client


def _sum(client, meter, customer, start=T0 - 40 * DAY, end=T0 + DAY):
    return (
        client.v1.billing.meters.event_summaries.list(
            meter.id, {"customer": customer.id, "start_time": start, "end_time": end}
        )
        .data[0]
        .aggregated_value
    )


@pytest.fixture
def setup(build):
    clock = build.clock(T0)
    return clock, build.customer(clock), build.meter()


def test_v1_event_and_duplicate_identifier(build, client, setup):
    _, cust, m = setup
    ev = build.event(m, cust, 3, T0, identifier="dup-1")
    assert_stripe_fields(ev, "billing.meter_event")
    assert (ev.identifier, ev.timestamp, ev.payload["value"]) == ("dup-1", T0, "3")
    with pytest.raises(stripe.InvalidRequestError) as err:
        build.event(m, cust, 3, T0, identifier="dup-1")
    assert err.value.http_status == 400
    assert "An event already exists with identifier dup-1" in err.value.user_message
    assert err.value.headers["stripe-should-retry"] == "false"
    assert _sum(client, m, cust) == 3


def test_v2_event(client, setup):
    _, cust, m = setup
    ev = client.v2.billing.meter_events.create(
        {
            "event_name": m.event_name,
            "timestamp": "2025-01-01T00:00:00.000Z",
            "payload": {"stripe_customer_id": cust.id, "value": "2.5"},
        }
    )
    assert ev.object == "v2.billing.meter_event" and ev.identifier and ev.timestamp.startswith("2025-01-01T00:00:00")
    with pytest.raises(stripe.InvalidRequestError, match="already exists"):
        client.v2.billing.meter_events.create(
            {
                "event_name": m.event_name,
                "identifier": ev.identifier,
                "payload": {"stripe_customer_id": cust.id, "value": "1"},
            }
        )
    assert _sum(client, m, cust) == 2.5


@pytest.mark.parametrize("offset,ok", [(-35 * DAY, True), (-35 * DAY - 1, False), (300, True), (301, False)])
def test_timestamp_window_follows_test_clock(build, setup, offset, ok):
    _, cust, m = setup  # the clock is at T0, years before the wall clock
    if ok:
        build.event(m, cust, 1, T0 + offset)
    else:
        with pytest.raises(stripe.InvalidRequestError) as err:
            build.event(m, cust, 1, T0 + offset)
        assert err.value.code in ("timestamp_too_far_in_past", "timestamp_in_future")


def test_timestamp_window_wall_clock(build):
    cust, m = build.customer(), build.meter()
    build.event(m, cust, 1, int(time.time()) - 60)
    with pytest.raises(stripe.InvalidRequestError, match="35 days"):
        build.event(m, cust, 1, T0)


@pytest.mark.parametrize(
    "value,code",
    [
        ("1234567890.12345", None),
        ("1234567890.123456", "meter_event_value_too_many_digits"),
        ("0.000000000000001", None),
        ("abc", "meter_event_invalid_value"),
        ("-4", None),
    ],
)
def test_values(build, setup, value, code):
    _, cust, m = setup
    if code is None:
        build.event(m, cust, value, T0)
    else:
        with pytest.raises(stripe.InvalidRequestError) as err:
            build.event(m, cust, value, T0)
        assert err.value.code == code


def test_unknown_customer_and_meters_are_errors(build, client, setup):
    _, cust, m = setup
    with pytest.raises(stripe.InvalidRequestError) as err:
        build.event(m, type("C", (), {"id": "cus_missing"})(), 1, T0)
    assert err.value.code == "meter_event_customer_not_found"
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.billing.meter_events.create(
            {"event_name": "no_such_meter", "payload": {"stripe_customer_id": cust.id, "value": "1"}}
        )
    assert err.value.code == "no_meter"
    client.v1.billing.meters.deactivate(m.id)
    with pytest.raises(stripe.InvalidRequestError) as err:
        build.event(m, cust, 1, T0)
    assert err.value.code == "archived_meter"


def test_cancel_within_24_hours_v1_and_v2(build, client):
    clock = build.clock(T0)
    cust, m = build.customer(clock), build.meter()
    build.event(m, cust, 5, T0, identifier="c1-" + m.id)
    build.event(m, cust, 7, T0, identifier="c2-" + m.id)
    build.event(m, cust, 11, T0, identifier="c3-" + m.id)
    adj = client.v1.billing.meter_event_adjustments.create(
        {"event_name": m.event_name, "type": "cancel", "cancel": {"identifier": "c1-" + m.id}}
    )
    assert_stripe_fields(adj, "billing.meter_event_adjustment")
    assert adj.cancel.identifier == "c1-" + m.id
    with pytest.raises(stripe.InvalidRequestError, match="already canceled"):
        client.v1.billing.meter_event_adjustments.create(
            {"event_name": m.event_name, "type": "cancel", "cancel": {"identifier": "c1-" + m.id}}
        )
    build.advance(clock, T0 + DAY - 1)
    v2 = client.v2.billing.meter_event_adjustments.create(
        {"event_name": m.event_name, "type": "cancel", "cancel": {"identifier": "c2-" + m.id}}
    )
    assert v2.object == "v2.billing.meter_event_adjustment"
    build.advance(clock, T0 + DAY + 1)
    with pytest.raises(stripe.InvalidRequestError, match="24 hours"):
        client.v1.billing.meter_event_adjustments.create(
            {"event_name": m.event_name, "type": "cancel", "cancel": {"identifier": "c3-" + m.id}}
        )
    assert _sum(client, m, cust) == 11


def test_stream_session_batches_and_async_errors(server, build, client, setup):
    _, cust, m = setup
    session = client.v2.billing.meter_event_session.create()
    assert session.object == "v2.billing.meter_event_session" and session.expires_at > session.created
    stream = make_client(server.url, session.authentication_token)
    good = [
        {
            "event_name": m.event_name,
            "identifier": uuid.uuid4().hex,
            "timestamp": "2025-01-01T00:00:00Z",
            "payload": {"stripe_customer_id": cust.id, "value": "1"},
        }
        for _ in range(98)
    ]
    bad = [
        {
            "event_name": m.event_name,
            "identifier": good[0]["identifier"],
            "payload": {"stripe_customer_id": cust.id, "value": "1"},
        },
        {"event_name": m.event_name, "payload": {"stripe_customer_id": "cus_nobody", "value": "1"}},
    ]
    assert stream.v2.billing.meter_event_stream.create({"events": good + bad}) is None  # accepted as a whole
    assert _sum(client, m, cust) == 98
    with pytest.raises(stripe.InvalidRequestError, match="At most 100"):
        stream.v2.billing.meter_event_stream.create({"events": good * 2})
    events = client.v2.core.events.list({"object_id": m.id}).data
    codes = {t.code: t.error_count for e in events for t in e.data["reason"]["error_types"]}
    assert codes == {"duplicate_meter_event": 1, "meter_event_customer_not_found": 1}
    assert events[0].type == "v1.billing.meter.error_report_triggered"
    with pytest.raises(stripe.AuthenticationError):  # the stream needs a session token, not the secret key
        client.v2.billing.meter_event_stream.create({"events": good[:1]})


def test_stream_session_expires(server, client, monkeypatch):
    session = client.v2.billing.meter_event_session.create()
    stream = make_client(server.url, session.authentication_token)
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 15 * 60 + 1)
    with pytest.raises(stripe.error.TemporarySessionExpiredError):
        stream.v2.billing.meter_event_stream.create({"events": [{"event_name": "x", "payload": {}}]})

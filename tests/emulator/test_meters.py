"""Billing meters and event summaries."""

from __future__ import annotations

import pytest
import stripe

from .conftest import DAY, T0, assert_stripe_fields


def test_meter_lifecycle(build, client):
    m = build.meter(
        customer_mapping={"type": "by_id", "event_payload_key": "cust"},
        value_settings={"event_payload_key": "tokens"},
        event_time_window="hour",
    )
    assert_stripe_fields(m, "billing.meter")
    assert (
        m.status,
        m.customer_mapping.event_payload_key,
        m.value_settings.event_payload_key,
        m.event_time_window,
    ) == ("active", "cust", "tokens", "hour")
    assert client.v1.billing.meters.retrieve(m.id).display_name == m.display_name
    assert client.v1.billing.meters.update(m.id, {"display_name": "renamed"}).display_name == "renamed"
    off = client.v1.billing.meters.deactivate(m.id)
    assert off.status == "inactive" and off.status_transitions.deactivated_at
    assert m.id in [x.id for x in client.v1.billing.meters.list({"status": "inactive", "limit": 100}).data]
    assert m.id not in [x.id for x in client.v1.billing.meters.list({"status": "active", "limit": 100}).data]
    assert client.v1.billing.meters.reactivate(m.id).status == "active"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.billing.meters.create(
            {"display_name": "dup", "event_name": m.event_name, "default_aggregation": {"formula": "sum"}}
        )


def _summary(client, meter, customer, start, end, **kw):
    return client.v1.billing.meters.event_summaries.list(
        meter.id, {"customer": customer.id, "start_time": start, "end_time": end, **kw}
    ).data


@pytest.mark.parametrize("formula,expected", [("sum", 7.5), ("count", 3), ("last", 4)])
def test_summary_formulas(build, client, formula, expected):
    clock = build.clock(T0 + 2 * DAY)
    cust, m = build.customer(clock), build.meter(formula)
    build.event(m, cust, "1.5", T0 + 100)
    build.event(m, cust, 4, T0 + 300)  # latest timestamp, received first ...
    build.event(m, cust, 2, T0 + 200)  # ... the later receipt with an earlier timestamp does not win
    build.event(m, cust, 99, T0 + DAY)  # outside [start, end)
    (s,) = _summary(client, m, cust, T0, T0 + 3600)
    assert_stripe_fields(s, "billing.meter_event_summary")
    assert s.aggregated_value == expected and isinstance(s.aggregated_value, (int, float))


def test_last_ties_take_later_receipt(build, client):
    clock = build.clock(T0 + DAY)
    cust, m = build.customer(clock), build.meter("last")
    build.event(m, cust, 5, T0 + 60)
    build.event(m, cust, 6, T0 + 60)
    assert _summary(client, m, cust, T0, T0 + 3600)[0].aggregated_value == 6


def test_grouping_windows_newest_first(build, client):
    clock = build.clock(T0 + 3 * DAY)
    cust, m = build.customer(clock), build.meter()
    build.event(m, cust, 1, T0 + 10)
    build.event(m, cust, 2, T0 + 3600 + 10)
    build.event(m, cust, 3, T0 + DAY + 5)
    hours = _summary(client, m, cust, T0, T0 + 3 * 3600, value_grouping_window="hour")
    assert [(h.start_time, h.aggregated_value) for h in hours] == [(T0 + 7200, 0), (T0 + 3600, 2), (T0, 1)]
    days = _summary(client, m, cust, T0, T0 + 2 * DAY, value_grouping_window="day", limit=1)
    assert [d.aggregated_value for d in days] == [3]
    with pytest.raises(stripe.InvalidRequestError, match="aligned"):
        _summary(client, m, cust, T0 + 1, T0 + 3600)
    with pytest.raises(stripe.InvalidRequestError, match="aligned"):
        _summary(client, m, cust, T0 + 60, T0 + 3600, value_grouping_window="hour")


def test_event_time_window_keeps_latest_event_per_window(build, client):
    clock = build.clock(T0 + DAY)
    cust = build.customer(clock)
    m = build.meter("sum", event_time_window="hour")
    build.event(m, cust, 10, T0 + 10)
    build.event(m, cust, 12, T0 + 20)  # cumulative value within the hour: only this counts
    build.event(m, cust, 5, T0 + 3600 + 1)
    assert _summary(client, m, cust, T0, T0 + 7200)[0].aggregated_value == 17

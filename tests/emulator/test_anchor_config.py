"""`billing_cycle_anchor_config` on subscription create, through the real SDK on test clocks: the anchor Stripe
computes, the periods that keep the configured day and time (31st, 30th, 29th across February and short
months), month for yearly and multi-month prices, backdating, Stripe's refusals; and the anchor's own day
without a config."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import stripe

HOUR = 3600


def ts(*parts) -> int:
    return int(datetime(*parts, tzinfo=UTC).timestamp())


def day(t: int) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _subscribe(build, client, created: int, interval: str = "month", interval_count: int = 1, **params):
    clock = build.clock(created)
    customer = build.customer(clock)
    meter = build.meter()
    price = client.v1.prices.create(
        {
            "currency": "usd",
            "unit_amount": 100,
            "product_data": {"name": "Usage"},
            "recurring": {
                "interval": interval,
                "interval_count": interval_count,
                "usage_type": "metered",
                "meter": meter.id,
            },
        }
    )
    sub = client.v1.subscriptions.create({"customer": customer.id, "items": [{"price": price.id}], **params})
    return clock, customer, meter, sub


def _periods(client, sub) -> list[tuple[str, str]]:
    invoices = client.v1.invoices.list({"subscription": sub.id, "limit": 100}).auto_paging_iter()
    return sorted((day(i.period_start), day(i.period_end)) for i in invoices)


def _ends(build, client, created: int, until: int, **params) -> list[str]:
    """The period ends of a subscription created at `created`, its clock advanced to `until` in one go."""
    clock, _, _, sub = _subscribe(build, client, created, **params)
    build.advance(clock, until)
    return [end[5:10] for _, end in _periods(client, sub)]


def _current_period(client, sub_id) -> tuple[str, str]:
    (item,) = client.v1.subscriptions.retrieve(sub_id)["items"].data
    return day(item.current_period_start), day(item.current_period_end)


def test_day_31_from_a_30_day_month_keeps_the_31st_at_the_configured_time(build, client):
    created = ts(2025, 9, 15, 10, 20, 30)
    clock, customer, meter, sub = _subscribe(
        build, client, created, billing_cycle_anchor_config={"day_of_month": 31, "hour": 5, "minute": 6, "second": 7}
    )
    # Stripe anchors on the first occurrence that is the 31st itself; the first period ends on Sep 30
    assert day(sub.billing_cycle_anchor) == "2025-10-31 05:06:07"
    assert sub.billing_cycle_anchor_config.to_dict() == {
        "day_of_month": 31,
        "hour": 5,
        "minute": 6,
        "month": None,
        "second": 7,
    }
    assert _current_period(client, sub.id) == ("2025-09-15 10:20:30", "2025-09-30 05:06:07")
    preview = client.v1.invoices.create_preview({"subscription": sub.id})
    assert (day(preview.period_start), day(preview.period_end)) == ("2025-09-15 10:20:30", "2025-09-30 05:06:07")
    updated = client.v1.subscriptions.update(sub.id, {"cancel_at_period_end": True})
    assert day(updated.cancel_at) == "2025-09-30 05:06:07"
    client.v1.subscriptions.update(sub.id, {"cancel_at_period_end": False})

    last_second = ts(2025, 9, 30, 5, 6, 6)
    build.advance(clock, last_second)
    build.event(meter, customer, 1, last_second)  # the first period's last second
    build.event(meter, customer, 2, last_second + 1)  # the second period's first
    assert _current_period(client, sub.id)[1] == "2025-09-30 05:06:07"  # not closed one second early
    build.advance(clock, last_second + 1)
    assert _current_period(client, sub.id) == ("2025-09-30 05:06:07", "2025-10-31 05:06:07")
    build.advance(clock, ts(2025, 11, 1))
    assert _current_period(client, sub.id) == ("2025-10-31 05:06:07", "2025-11-30 05:06:07")

    build.advance(clock, ts(2026, 4, 1))
    at = "05:06:07"
    assert _periods(client, sub) == [
        ("2025-09-15 10:20:30", f"2025-09-30 {at}"),
        (f"2025-09-30 {at}", f"2025-10-31 {at}"),
        (f"2025-10-31 {at}", f"2025-11-30 {at}"),
        (f"2025-11-30 {at}", f"2025-12-31 {at}"),
        (f"2025-12-31 {at}", f"2026-01-31 {at}"),
        (f"2026-01-31 {at}", f"2026-02-28 {at}"),
        (f"2026-02-28 {at}", f"2026-03-31 {at}"),
    ]
    invoices = sorted(
        client.v1.invoices.list({"subscription": sub.id, "limit": 100}).data, key=lambda i: i.period_start
    )
    assert [i.total for i in invoices[:3]] == [100, 200, 0]
    lines = client.v1.invoices.line_items.list(invoices[1].id).data
    assert [(day(li.period.start), day(li.period.end)) for li in lines] == [(f"2025-09-30 {at}", f"2025-10-31 {at}")]
    assert _current_period(client, sub.id) == (f"2026-03-31 {at}", f"2026-04-30 {at}")


@pytest.mark.parametrize(("year", "february"), [(2027, "02-28"), (2028, "02-29")])
def test_stripes_example_of_an_anchor_on_the_31st(build, client, year, february):
    ends = _ends(build, client, ts(year, 1, 10), ts(year, 5, 1), billing_cycle_anchor_config={"day_of_month": 31})
    assert ends == ["01-31", february, "03-31", "04-30"]


@pytest.mark.parametrize(
    ("configured", "year", "february"),
    [(29, 2025, "02-28"), (29, 2028, "02-29"), (30, 2025, "02-28"), (30, 2028, "02-29")],
)
def test_days_29_and_30_come_back_after_february(build, client, configured, year, february):
    ends = _ends(
        build, client, ts(year, 1, 5), ts(year, 5, 1), billing_cycle_anchor_config={"day_of_month": configured}
    )
    assert ends == [f"01-{configured}", february, f"03-{configured}", f"04-{configured}"]


def test_time_of_day_defaults_to_the_creation_time(build, client):
    created = ts(2025, 1, 10, 13, 14, 15)
    _, _, _, sub = _subscribe(build, client, created, billing_cycle_anchor_config={"day_of_month": 20, "hour": 1})
    assert day(sub.billing_cycle_anchor) == "2025-01-20 01:14:15"
    assert (sub.billing_cycle_anchor_config.minute, sub.billing_cycle_anchor_config.second) == (14, 15)
    # created at the very occurrence: the anchor is now, and a full period starts
    _, _, _, sub = _subscribe(build, client, created, billing_cycle_anchor_config={"day_of_month": 10})
    assert sub.billing_cycle_anchor == created
    assert _current_period(client, sub.id) == ("2025-01-10 13:14:15", "2025-02-10 13:14:15")


def test_month_sets_the_month_of_a_yearly_anchor(build, client):
    clock, _, _, sub = _subscribe(
        build,
        client,
        ts(2025, 2, 10),
        interval="year",
        billing_cycle_anchor_config={"month": 7, "day_of_month": 1, "hour": 0},
    )
    assert day(sub.billing_cycle_anchor) == "2025-07-01 00:00:00"
    assert sub.billing_cycle_anchor_config.month == 7
    build.advance(clock, ts(2026, 7, 2))
    assert _periods(client, sub) == [
        ("2025-02-10 00:00:00", "2025-07-01 00:00:00"),
        ("2025-07-01 00:00:00", "2026-07-01 00:00:00"),
    ]


def test_stripes_two_month_example_anchors_beyond_the_first_period(build, client):
    """Stripe: two-month interval created in February with day_of_month 31: the anchor is Aug 31, the first
    full invoice is still in February (Feb 28)."""
    clock, _, _, sub = _subscribe(
        build, client, ts(2025, 2, 10), interval_count=2, billing_cycle_anchor_config={"day_of_month": 31, "hour": 0}
    )
    assert day(sub.billing_cycle_anchor) == "2025-08-31 00:00:00"
    assert _current_period(client, sub.id)[1] == "2025-02-28 00:00:00"
    build.advance(clock, ts(2025, 9, 1))
    assert [end[:10] for _, end in _periods(client, sub)] == ["2025-02-28", "2025-04-30", "2025-06-30", "2025-08-31"]


def test_a_backdated_start_runs_to_the_configured_anchor(build, client):
    clock, _, _, sub = _subscribe(
        build,
        client,
        ts(2025, 1, 10),
        backdate_start_date=ts(2024, 12, 20),
        billing_cycle_anchor_config={"day_of_month": 31, "hour": 0},
    )
    assert (day(sub.start_date), day(sub.billing_cycle_anchor)) == ("2024-12-20 00:00:00", "2025-01-31 00:00:00")
    assert _current_period(client, sub.id) == ("2024-12-20 00:00:00", "2025-01-31 00:00:00")
    build.advance(clock, ts(2025, 3, 1))
    assert _periods(client, sub) == [
        ("2024-12-20 00:00:00", "2025-01-31 00:00:00"),
        ("2025-01-31 00:00:00", "2025-02-28 00:00:00"),
    ]


def test_without_a_config_the_anchors_own_day_sets_later_periods(build, client):
    clock, _, _, sub = _subscribe(build, client, ts(2025, 9, 30, 8))
    assert sub.billing_cycle_anchor_config is None
    build.advance(clock, ts(2025, 12, 1))
    assert [end for _, end in _periods(client, sub)] == ["2025-10-30 08:00:00", "2025-11-30 08:00:00"]


NOW = ts(2025, 3, 3)


@pytest.mark.parametrize(
    ("params", "interval", "param", "message"),
    [
        (
            {"billing_cycle_anchor": NOW + 86400, "billing_cycle_anchor_config": {"day_of_month": 5}},
            "month",
            "billing_cycle_anchor_config",
            "You may only specify one of these parameters: billing_cycle_anchor, billing_cycle_anchor_config.",
        ),
        (
            {"billing_cycle_anchor_config": {"day_of_month": 5}},
            "week",
            "billing_cycle_anchor_config",
            "billing_cycle_anchor_config is only valid with monthly and yearly price intervals.",
        ),
        (
            {"billing_cycle_anchor_config": {"hour": 5}},
            "month",
            "billing_cycle_anchor_config[day_of_month]",
            "Missing required param: billing_cycle_anchor_config[day_of_month].",
        ),
        (
            {"billing_cycle_anchor_config": {"day_of_month": 0}},
            "month",
            "billing_cycle_anchor_config[day_of_month]",
            "This value must be greater than or equal to 1.",
        ),
        (
            {"billing_cycle_anchor_config": {"day_of_month": 32}},
            "month",
            "billing_cycle_anchor_config[day_of_month]",
            "This value must be less than or equal to 31.",
        ),
        (
            {"billing_cycle_anchor_config": {"day_of_month": 1, "month": 13}},
            "year",
            "billing_cycle_anchor_config[month]",
            "This value must be less than or equal to 12.",
        ),
        (
            {"billing_cycle_anchor_config": {"day_of_month": 1, "hour": 24}},
            "month",
            "billing_cycle_anchor_config[hour]",
            "This value must be less than or equal to 23.",
        ),
        (
            {"billing_cycle_anchor_config": {"day_of_month": 1, "minute": 60}},
            "month",
            "billing_cycle_anchor_config[minute]",
            "This value must be less than or equal to 59.",
        ),
        (
            {"billing_cycle_anchor_config": {"day_of_month": 1, "second": -1}},
            "month",
            "billing_cycle_anchor_config[second]",
            "This value must be greater than or equal to 0.",
        ),
        (
            {"billing_cycle_anchor_config": {"day_of_month": "last"}},
            "month",
            "billing_cycle_anchor_config[day_of_month]",
            "Invalid integer: last",
        ),
        (
            {"billing_cycle_anchor_config": {"day_of_month": 1, "month": 7}},
            "month",
            "billing_cycle_anchor_config[month]",
            "billing_cycle_anchor_config[month] can only be used with prices that bill every several months or yearly",
        ),
    ],
)
def test_refusals_in_stripes_words(build, client, params, interval, param, message):
    with pytest.raises(stripe.InvalidRequestError) as refused:
        _subscribe(build, client, NOW, interval=interval, **params)
    err = refused.value
    assert (err.http_status, err.param) == (400, param)
    assert err.user_message.startswith(message)

"""Time: Stripe's month arithmetic for billing periods and the ISO timestamps of the v2 API."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime

from .errors import invalid

DAY = 86400


def month_index(ts: int) -> int:
    """Months since year 0 of the UTC month of ts (year * 12 + month - 1): month arithmetic without carries."""
    dt = datetime.fromtimestamp(ts, UTC)
    return dt.year * 12 + dt.month - 1


def time_of_day(ts: int) -> tuple[int, int, int]:
    dt = datetime.fromtimestamp(ts, UTC)
    return dt.hour, dt.minute, dt.second


def has_day(index: int, day: int) -> bool:
    """Whether month `index` (see month_index) has that day: February has no 30th."""
    year, month0 = divmod(index, 12)
    return day <= calendar.monthrange(year, month0 + 1)[1]


def on_day(index: int, day: int, at: tuple[int, int, int]) -> int:
    """That day of month `index`, clamped to the month's last day (the 31st of April is April 30), at `at` UTC."""
    year, month0 = divmod(index, 12)
    day = min(day, calendar.monthrange(year, month0 + 1)[1])
    return int(datetime(year, month0 + 1, day, *at, tzinfo=UTC).timestamp())


def add_months(anchor: int, k: int) -> int:
    """anchor + k months, the day clamped to the month's last day (Jan 31 + 1 month = Feb 28/29)."""
    return on_day(month_index(anchor) + k, datetime.fromtimestamp(anchor, UTC).day, time_of_day(anchor))


def next_boundary(
    anchor: int,
    t: int,
    interval: str = "month",
    count: int = 1,
    day_of_month: int | None = None,
    at: tuple[int, int, int] | None = None,
) -> int:
    """The first period boundary strictly after t; boundaries are anchor + k intervals, k computed from the anchor.

    Month and year boundaries fall on the anchor's day and time, the day clamped to shorter months, unless
    `day_of_month` and `at` say otherwise (a subscription's billing_cycle_anchor_config). Without them a t
    before the anchor gives the anchor: a first period from an earlier start date runs to it. With them the
    boundaries before the anchor count too, since a configured anchor may lie beyond the first period end.
    """
    if day_of_month is None and t < anchor:
        return anchor
    if interval in ("day", "week"):
        step = DAY * (7 if interval == "week" else 1) * count
        return anchor + ((t - anchor) // step + 1) * step
    months = 12 * count if interval == "year" else count
    day = day_of_month or datetime.fromtimestamp(anchor, UTC).day
    at = at or time_of_day(anchor)
    first = month_index(anchor)
    k = (month_index(t) - first) // months - 1  # a boundary in an earlier month than t's: not after t
    while on_day(first + k * months, day, at) <= t:
        k += 1
    return on_day(first + k * months, day, at)


def configured_anchor(
    now: int, months: int, day: int, at: tuple[int, int, int], month: int | None = None
) -> tuple[int, int]:
    """(the first period end, the billing_cycle_anchor) of a billing_cycle_anchor_config created at `now`.

    The first period ends at the next occurrence, at or after now, of `day` (clamped to shorter months) at
    `at` UTC; with `month`, of the boundaries every `months` months aligned on that month. The anchor is the
    first of these boundaries, from the next occurrence on, that falls on `day` itself (and in `month`):
    Stripe's "a billing_cycle_anchor that's more than one billing period in the future" (day 31 from
    February every 2 months: the first period ends Feb 28, the anchor is Aug 31). Later boundaries keep
    the day either way.
    """
    index = month_index(now)
    while (month is not None and index % 12 != month - 1) or on_day(index, day, at) < now:
        index += 1
    first = index
    while on_day(first - months, day, at) >= now:  # aligned on a month further ahead: Apr before Jul
        first -= months
    anchor = index
    for k in range(13):  # a 29th of February is at most eight years ahead; a 30th never comes
        candidate = index + k * months
        if (month is None or candidate % 12 == month - 1) and has_day(candidate, day):
            anchor = candidate
            break
    return on_day(first, day, at), on_day(anchor, day, at)


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(round((ts % 1) * 1000)) % 1000:03d}Z"


def parse_timestamp(v, param: str) -> int:
    """v2 timestamps: ISO 8601 strings (the SDK may also send epoch integers)."""
    if isinstance(v, bool):
        raise invalid(f"Invalid timestamp: {v}", param=param)
    if isinstance(v, (int, float)):
        return int(v)
    if isinstance(v, str):
        if v.isdigit():
            return int(v)
        try:
            dt = datetime.fromisoformat(v.replace("Z", "+00:00"))
        except ValueError:
            raise invalid(f"Invalid timestamp: {v}", param=param) from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return int(dt.timestamp())
    raise invalid(f"Invalid timestamp: {v}", param=param)

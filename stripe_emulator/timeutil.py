"""Time: Stripe's month arithmetic for billing periods and the ISO timestamps of the v2 API."""
from __future__ import annotations

import calendar
from datetime import datetime, timezone

from .errors import invalid

DAY = 86400


def add_months(anchor: int, k: int) -> int:
    """anchor + k months, the day clamped to the month's last day (Jan 31 + 1 month = Feb 28/29)."""
    dt = datetime.fromtimestamp(anchor, timezone.utc)
    month0 = dt.month - 1 + k
    year, month = dt.year + month0 // 12, month0 % 12 + 1
    day = min(dt.day, calendar.monthrange(year, month)[1])
    return int(dt.replace(year=year, month=month, day=day).timestamp())


def next_boundary(anchor: int, t: int, interval: str = "month", count: int = 1) -> int:
    """The first period boundary strictly after t; boundaries are anchor + k intervals, k computed from the anchor."""
    if t < anchor:
        return anchor
    if interval in ("day", "week"):
        step = DAY * (7 if interval == "week" else 1) * count
        return anchor + ((t - anchor) // step + 1) * step
    months = 12 * count if interval == "year" else count
    a, b = datetime.fromtimestamp(anchor, timezone.utc), datetime.fromtimestamp(t, timezone.utc)
    k = max(0, ((b.year - a.year) * 12 + b.month - a.month) // months - 1)
    while add_months(anchor, k * months) <= t:
        k += 1
    return add_months(anchor, k * months)


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + \
        f"{int(round((ts % 1) * 1000)) % 1000:03d}Z"


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
            raise invalid(f"Invalid timestamp: {v}", param=param)
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=timezone.utc)
        return int(dt.timestamp())
    raise invalid(f"Invalid timestamp: {v}", param=param)

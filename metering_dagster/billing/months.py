"""Billing-period arithmetic as Stripe does it (docs/ARCHITECTURE.md, "Billing rules").

Month k of a customer starts at `anchor + k months`, computed from the anchor each time,
the day clamped to the month's last day.
"""

from __future__ import annotations

import calendar
from datetime import UTC, datetime


def add_months(anchor: datetime, months: int) -> datetime:
    total = anchor.year * 12 + (anchor.month - 1) + months
    year, month0 = divmod(total, 12)
    day = min(anchor.day, calendar.monthrange(year, month0 + 1)[1])
    return anchor.replace(year=year, month=month0 + 1, day=day)


def period_index(anchor: datetime, at: datetime) -> int:
    """k such that `at` lies in [anchor + k months, anchor + (k+1) months)."""
    k = (at.year - anchor.year) * 12 + (at.month - anchor.month)
    while add_months(anchor, k) > at:
        k -= 1
    while add_months(anchor, k + 1) <= at:
        k += 1
    return k


def period_containing(anchor: datetime, at: datetime) -> tuple[datetime, datetime]:
    k = period_index(anchor, at)
    return add_months(anchor, k), add_months(anchor, k + 1)


def epoch(at: datetime) -> int:
    """Whole epoch seconds of a tz-aware datetime."""
    return int(at.timestamp())


def from_epoch(seconds: int) -> datetime:
    return datetime.fromtimestamp(int(seconds), tz=UTC)


def month_boundary(origin: datetime, months: int, day_of_month: int) -> datetime:
    """`origin` moved by whole months onto `day_of_month` (clamped to the month's last day), its time kept.

    Stripe's rule for a subscription's period ends: the day of its `billing_cycle_anchor_config`, else the
    day of its `billing_cycle_anchor`, in every later month.
    """
    total = origin.year * 12 + (origin.month - 1) + months
    year, month0 = divmod(total, 12)
    return origin.replace(year=year, month=month0 + 1, day=min(day_of_month, calendar.monthrange(year, month0 + 1)[1]))

"""Which periods are closing or just finalized at a given time (for the schedules)."""

from __future__ import annotations

from datetime import datetime, timedelta

from metering_dagster.billing.months import period_containing
from metering_dagster.contract.model import Contract


def periods_in_grace(contract: Contract, now: datetime) -> list[tuple[str, datetime]]:
    """(customer, period end) of each period that has ended and whose grace period has not."""
    grace = timedelta(seconds=contract.grace_period_seconds)
    out = []
    for c in contract.customers:
        if now < c.billing_anchor:
            continue
        start, _ = period_containing(c.billing_anchor, now)
        if start > c.billing_anchor and now < start + grace:
            out.append((c.id, start))
    return out


def periods_finalized_within(contract: Contract, now: datetime, window: timedelta) -> list[tuple[str, datetime]]:
    """(customer, period end) of each period whose invoice finalized (end + grace) in (now - window, now]."""
    grace = timedelta(seconds=contract.grace_period_seconds)
    out = []
    for c in contract.customers:
        if now - grace < c.billing_anchor:
            continue
        start, _ = period_containing(c.billing_anchor, now - grace)
        if start > c.billing_anchor and now - window < start + grace <= now:
            out.append((c.id, start))
    return out

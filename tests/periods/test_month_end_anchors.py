"""Three months of period closes for customers anchored at month ends, through `metering run` only.

Contract anchors on the 31st, 30th and 29th at odd hours and on February 28; the subscriptions are created
in September (30 days). The Stripe test clock stops inside each grace period, after every period end of the
month, with a run at each stop, usage landing as it happens. Every closed period's final invoice must bill
the contract's period (October 31 stays October's for the customer anchored on the 31st) and equal our
shadow invoice to the cent, with no adjustment and no failed run. Expected periods are written out here by
hand, and amounts computed here from the events, independently of the pipeline. The story is set in 2025: events
dated after the wall clock are quarantined (timestamp_in_future), whatever Stripe's test clock says.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest

from tests.periods.test_period_close import metering, query, write

pytestmark = pytest.mark.slow

CONTRACT = """\
environment: test
currency: usd
grace_period: 72h
test_clock_start: "2025-09-10T00:00:00Z"
meters:
  - key: tokens
    display_name: Tokens
    action: inference
    value: metadata.tokens
    aggregation: sum
    unit: token
    price: {model: per_unit, unit_amount_decimal: "0.5"}
  - key: calls
    display_name: Calls
    action: inference
    aggregation: count
    unit: call
    price: {model: per_unit, unit_amount_decimal: "2"}
customers:
  - {id: cus_d31, billing_anchor: "2025-01-31T10:30:15Z", interval: month}
  - {id: cus_d30, billing_anchor: "2025-05-30T23:45:00Z", interval: month}
  - {id: cus_d29, billing_anchor: "2025-03-29T05:07:09Z", interval: month}
  - {id: cus_feb28, billing_anchor: "2025-02-28T12:00:00Z", interval: month}
"""


def t(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# The contract's periods, as a finance lead reads them off the anchors (the day clamped in shorter months).
PERIODS = {
    "cus_d31": ["2025-08-31T10:30:15Z", "2025-09-30T10:30:15Z", "2025-10-31T10:30:15Z", "2025-11-30T10:30:15Z"],
    "cus_d30": ["2025-08-30T23:45:00Z", "2025-09-30T23:45:00Z", "2025-10-30T23:45:00Z", "2025-11-30T23:45:00Z"],
    "cus_d29": ["2025-08-29T05:07:09Z", "2025-09-29T05:07:09Z", "2025-10-29T05:07:09Z", "2025-11-29T05:07:09Z"],
    "cus_feb28": ["2025-08-28T12:00:00Z", "2025-09-28T12:00:00Z", "2025-10-28T12:00:00Z", "2025-11-28T12:00:00Z"],
}
CLOCK_START = t("2025-09-10T00:00:00Z")
# A run at each stop: the subscriptions are created at the first; then one stop a month, after every period
# end of that month and inside each grace period (72 h); the last once every grace period is over.
STOPS = [
    t("2025-09-15T12:00:00Z"),
    t("2025-09-30T23:55:00Z"),
    t("2025-10-31T10:45:00Z"),
    t("2025-11-30T23:55:00Z"),
    t("2025-12-04T00:00:00Z"),
]


def usage() -> list[tuple[str, str, datetime, int]]:
    """(event id, customer, time, tokens): in each period, its first second, its middle, a day before its end
    and its last second."""
    events = []
    for customer, bounds in PERIODS.items():
        for k in range(3):
            start, end = t(bounds[k]), t(bounds[k + 1])
            times = [
                max(start, CLOCK_START + timedelta(hours=1)),
                start + (end - start) / 2,
                end - timedelta(days=1),
                end - timedelta(seconds=1),
            ]
            for n, at in enumerate(times):
                events.append((f"{customer}-{k}-{n}", customer, at.replace(microsecond=0), 1000 * (k + 1) + 7 * n + 3))
    return events


def event_line(event_id: str, customer: str, at: datetime, tokens: int) -> str:
    return json.dumps(
        {
            "event_id": event_id,
            "timestamp": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "customer_id": customer,
            "action": "inference",
            "metadata": {"tokens": tokens},
        }
    )


def cents(exact: Decimal) -> int:
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def expected_lines() -> dict[tuple[str, str, int, int], int]:
    """(customer, meter, period start, period end) -> amount in cents, from the events and the prices above."""
    out = {}
    events = usage()
    for customer, bounds in PERIODS.items():
        for k in range(3):
            start, end = t(bounds[k]), t(bounds[k + 1])
            inside = [e for e in events if e[1] == customer and start <= e[2] < end]
            key = (customer, int(start.timestamp()), int(end.timestamp()))
            out[(key[0], "tokens", *key[1:])] = cents(sum(Decimal(e[3]) for e in inside) * Decimal("0.5"))
            out[(key[0], "calls", *key[1:])] = cents(Decimal(len(inside)) * 2)
    return out


def final_invoice_lines(state: Path) -> dict[tuple[str, str, int, int], int]:
    """Lines of every final subscription invoice, read from Stripe itself (the emulator's state file)."""
    import stripe

    from stripe_emulator import EmulatorServer

    out = {}
    with EmulatorServer(str(state / "stripe_emulator.sqlite"), port=0, grace_period_seconds=72 * 3600) as srv:
        client = stripe.StripeClient("sk_test_check", base_addresses={"api": srv.url})
        meters = {m.id: m.event_name for m in client.v1.billing.meters.list({"limit": 100}).auto_paging_iter()}
        for customer in client.v1.customers.list({"limit": 100}).auto_paging_iter():
            cid = customer.metadata["metering_customer_id"]
            for inv in client.v1.invoices.list({"customer": customer.id, "limit": 100}).auto_paging_iter():
                if inv.status not in ("open", "paid") or inv.billing_reason != "subscription_cycle":
                    continue
                for line in client.v1.invoices.line_items.list(inv.id, {"limit": 100}).auto_paging_iter():
                    price = client.v1.prices.retrieve(line.pricing.price_details.price)
                    key = (cid, meters[price.recurring.meter], line.period.start, line.period.end)
                    assert key not in out, f"two final lines for {key}"
                    out[key] = line.amount
    return out


def test_month_end_anchors_bill_the_contracts_periods_for_three_months(tmp_path, dbt_manifest):
    state, raw = tmp_path / "state", tmp_path / "raw"
    raw.mkdir()
    (tmp_path / "metering.yml").write_text(CONTRACT)
    env = dict(
        os.environ,
        METERING_STATE_DIR=str(state),
        METERING_RAW_DIR=str(raw),
        METERING_CONTRACT=str(tmp_path / "metering.yml"),
        DAGSTER_HOME=str(state / "dagster_home"),
    )
    (state / "dagster_home").mkdir(parents=True)

    events, landed = usage(), 0
    for n, stop in enumerate(STOPS):
        due = [
            e
            for e in events
            if (STOPS[n - 1] if n else CLOCK_START) - timedelta(minutes=1) < e[2] <= stop - timedelta(minutes=1)
        ]
        landed += len(due)
        if due:
            write(raw / f"usage-{n}.jsonl", *(event_line(*e) for e in due))
        if stop > CLOCK_START:
            metering("clock", "advance", "--to", stop.isoformat(), env=env)
        out = metering("run", env=env).stdout  # asserts exit 0: every run succeeds
        assert "succeeded" in out, out
    assert landed == len(events)

    # Stripe's subscriptions keep the contract's day: the subscription of the customer anchored on the 31st
    # was created on September 15 and still bills October 31.
    periods = query(
        state / "warehouse.duckdb",
        "select customer_id, billing_day_of_month, problem from ops.stripe_subscription_periods order by 1",
    )
    assert periods == [("cus_d29", 29, None), ("cus_d30", 30, None), ("cus_d31", 31, None), ("cus_feb28", 28, None)]

    expected = expected_lines()
    assert len(expected) == 4 * 3 * 2
    assert final_invoice_lines(state) == expected
    assert query(state / "warehouse.duckdb", "select count(*) from ops.stripe_adjustments") == [(0,)]
    results = query(state / "warehouse.duckdb", "select result, count(*) from ops.period_reconciliation group by 1")
    assert results == [("match", 12)], results
    statuses = query(
        state / "analytics.duckdb",
        "select status, count(*) from marts.rpt_reconciliation where period_start >= '2025-08-28' and period_start < '2025-11-28' group by 1",
    )
    assert statuses == [("match", 24)], statuses

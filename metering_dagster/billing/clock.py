"""Time in test mode: the one shared Stripe test clock.

The demo and the tests move time only through `advance_test_clock`, as a user testing against
real Stripe test mode would. Stripe lets a test clock advance at most two billing intervals at
a time, so a long jump is made in steps of one month, each waited on until the clock is
`ready` (Stripe has then run the billing of that step: period ends, invoices, finalization).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb
import stripe

from metering_dagster.billing.months import add_months, epoch, from_epoch
from metering_dagster.billing.objects import stripe_objects_exist, sync_stripe_objects
from metering_dagster.contract.model import Contract
from metering_dagster.progress import report
from metering_dagster.schema import ensure_billing_tables, ensure_source_tables


class ClockError(Exception):
    """The test clock cannot be moved as asked."""


@dataclass(frozen=True)
class ClockAdvance:
    test_clock_id: str
    moved_from: datetime
    moved_to: datetime
    steps: int

    def summary(self) -> str:
        if self.steps == 0:
            return f"test clock {self.test_clock_id} already at {self.moved_to.isoformat()}"
        return (
            f"test clock {self.test_clock_id} advanced from {self.moved_from.isoformat()} "
            f"to {self.moved_to.isoformat()} in {self.steps} step(s)"
        )


def _clock_id(client: stripe.StripeClient, con: duckdb.DuckDBPyConnection, contract: Contract) -> str:
    ensure_billing_tables(con)
    if not stripe_objects_exist(con, contract):
        sync_stripe_objects(client, contract, con)
    row = con.execute("SELECT test_clock_id FROM ops.stripe_test_clocks ORDER BY synced_at DESC LIMIT 1").fetchone()
    if row is None:
        result = sync_stripe_objects(client, contract, con)
        return result.test_clock_id
    return row[0]


def current_clock_time(client: stripe.StripeClient, con: duckdb.DuckDBPyConnection, contract: Contract) -> datetime:
    """Stripe's now for our customers: the test clock's frozen time in test mode, the wall clock in live."""
    if contract.environment == "live":
        return datetime.now(UTC).replace(microsecond=0)
    clock = client.v1.test_helpers.test_clocks.retrieve(_clock_id(client, con, contract))
    return from_epoch(clock.frozen_time)


def _wait_ready(client: stripe.StripeClient, clock_id: str, timeout_seconds: float) -> object:
    deadline = time.monotonic() + timeout_seconds
    delay = 0.05
    while True:
        clock = client.v1.test_helpers.test_clocks.retrieve(clock_id)
        if clock.status == "ready":
            return clock
        if clock.status == "internal_failure":
            raise ClockError(f"Stripe test clock {clock_id} failed while advancing")
        if time.monotonic() > deadline:
            raise ClockError(f"Stripe test clock {clock_id} still {clock.status!r} after {timeout_seconds:.0f}s")
        time.sleep(delay)
        delay = min(delay * 2, 2.0)


def advance_test_clock(
    client: stripe.StripeClient,
    con: duckdb.DuckDBPyConnection,
    contract: Contract,
    to: datetime,
    *,
    timeout_seconds: float = 600,
) -> ClockAdvance:
    """Move the shared test clock forward to `to` (creating the Stripe objects first if needed)."""
    if contract.environment == "live":
        raise ClockError("test clocks exist only in test mode: the contract says environment: live")
    if to.tzinfo is None:
        raise ClockError("the target time needs an offset (e.g. 2026-11-01T03:00:00Z)")
    clock_id = _clock_id(client, con, contract)
    clock = _wait_ready(client, clock_id, timeout_seconds)
    start = from_epoch(clock.frozen_time)
    target = from_epoch(epoch(to))
    if target < start:
        raise ClockError(f"test clocks only move forward: it is at {start.isoformat()}, asked {target.isoformat()}")
    steps = 0
    current = start
    while current < target:
        nxt = min(target, add_months(current, 1))
        # Stripe bills every customer of the clock at each step (period ends, invoices): it can take a while
        report(
            f"Stripe test clock at {current.isoformat()}: moving to {nxt.isoformat()} "
            f"(target {target.isoformat()}, a month at a time)"
        )
        client.v1.test_helpers.test_clocks.advance(clock_id, {"frozen_time": epoch(nxt)})
        clock = _wait_ready(client, clock_id, timeout_seconds)
        current = from_epoch(clock.frozen_time)
        steps += 1
    con.execute(
        "UPDATE ops.stripe_test_clocks SET frozen_time = to_timestamp(?), synced_at = now() WHERE test_clock_id = ?",
        [epoch(current), clock_id],
    )
    return ClockAdvance(test_clock_id=clock_id, moved_from=start, moved_to=current, steps=steps)


def record_clock_reading(
    client: stripe.StripeClient, con: duckdb.DuckDBPyConnection, contract: Contract, *, as_of: datetime
) -> datetime:
    """Record Stripe's now for this run's models (which period is current for budgets), with `as_of`: the time
    the run started reading its data, so the entitlements API knows how old what it answers is."""
    stripe_now = current_clock_time(client, con, contract)
    ensure_source_tables(con)
    con.execute("INSERT INTO ops.stripe_clock_readings VALUES (?, ?)", [as_of, stripe_now])
    # Only the latest reading is read; keep a day's worth of history for whoever investigates a decision.
    con.execute("DELETE FROM ops.stripe_clock_readings WHERE read_at < ?::timestamptz - INTERVAL 1 DAY", [as_of])
    return stripe_now

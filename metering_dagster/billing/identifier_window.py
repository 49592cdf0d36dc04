"""Re-sends that stay safe after Stripe's identifier window.

A re-sent ledger row is counted once because Stripe answers "an event already exists with this
identifier". Stripe promises that only "within a rolling period of at least 24 hours": a row whose
answer was lost (Stripe counted it) and that is sent again later, as a dead letter or after a
rejection its error report did not name, would then be counted twice on a `sum` meter.

So before a pending row is sent again, its first send attempt is looked at (`first_sent_at` on our
clock, `first_sent_stripe_at` on its customer's Stripe clock, written before each first request).
When either is older than `TRUST_IDENTIFIER_SECONDS`, the identifier is not trusted: Stripe's meter
event summary of the row's customer, meter and period is read, and `ledger.settle_by_summary` sends
only what Stripe lacks compared with the ledger's total (`sum`: the difference, possibly nothing;
`last`: the newest value, only if Stripe's differs). A key whose summary cannot be read is not sent
this time: a failed read delays it, it never sends it twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb
import stripe

from metering_dagster.billing import ledger
from metering_dagster.billing.months import from_epoch
from metering_dagster.billing.reads import in_parallel
from metering_dagster.billing.snapshot import _summary_total
from metering_dagster.settings import stripe_concurrency

# Stripe keeps identifiers unique for at least 24 hours. Four hours below that leave room for the time a
# run takes between this check and the last request, for our clock and Stripe's disagreeing, and for a test
# clock that Stripe may count differently from its wall clock (both clocks are checked).
TRUST_IDENTIFIER_SECONDS = 20 * 3600


@dataclass
class SettleResult:
    keys_checked: int = 0  # keys whose Stripe summary was read
    delivered_by_summary: int = 0  # pending rows Stripe's summary showed it already held
    replaced: int = 0  # pending rows replaced by a row of what Stripe lacked
    unreadable: list[str] = field(default_factory=list)  # "customer/meter/period: why" (tried again next time)


def untrusted(row: ledger.PendingEvent, stripe_now: dict[str | None, int]) -> bool:
    """Was the row first tried so long ago that Stripe may have forgotten its identifier?"""
    if row.first_sent_age_seconds is not None and row.first_sent_age_seconds > TRUST_IDENTIFIER_SECONDS:
        return True
    now = stripe_now.get(row.stripe_test_clock_id)
    return (
        row.first_sent_stripe_at is not None
        and now is not None
        and now - row.first_sent_stripe_at > TRUST_IDENTIFIER_SECONDS
    )


def settle_untrusted(
    client: stripe.StripeClient,
    con: duckdb.DuckDBPyConnection,
    rows: list[ledger.PendingEvent],
    stripe_now: dict[str | None, int],
    result: SettleResult,
    *,
    withheld_customers: frozenset[str] = frozenset(),
    held_customers: frozenset[str] = frozenset(),
) -> list[ledger.PendingEvent]:
    """The rows to send: `rows`, where every key holding an untrusted row is replaced by what Stripe's
    summary says it lacks (module doc)."""
    stripe_ids = {
        (c, m): (sc, sm)
        for c, m, sc, sm in con.execute(
            """SELECT c.customer_id, m.meter, c.stripe_customer_id, m.stripe_meter_id
               FROM ops.stripe_customers c, ops.stripe_meters m WHERE c.stripe_customer_id IS NOT NULL"""
        ).fetchall()
    }
    # a key without a Stripe customer or meter is not sent at all (send_pending says why)
    keys = sorted({r.key for r in rows if untrusted(r, stripe_now) and r.key[:2] in stripe_ids})
    if not keys:
        return rows
    period_ends = {
        (c, m, ps): pe
        for c, m, ps, pe in con.execute(
            """SELECT DISTINCT customer_id, meter, epoch(period_start)::BIGINT, epoch(period_end)::BIGINT
               FROM ops.stripe_ledger WHERE status = 'pending'"""
        ).fetchall()
    }

    def read(key: tuple[str, str, int]):
        customer, meter, ps = key
        try:
            return _summary_total(client, (customer, meter, ps, period_ends[key], *stripe_ids[(customer, meter)]))[4]
        except stripe.StripeError as err:
            return err

    settled: set[tuple[str, str, int]] = set()
    new_identifiers: set[str] = set()
    for key, answer in zip(keys, in_parallel(read, keys, stripe_concurrency())):
        customer, meter, ps = key
        if isinstance(answer, stripe.StripeError):
            why = answer.user_message or type(answer).__name__
            result.unreadable.append(f"{customer}/{meter}/{from_epoch(ps).date()}: {why}")
            ledger.mark_error(
                con,
                [r.identifier for r in rows if r.key == key],
                f"not sent: first tried over {TRUST_IDENTIFIER_SECONDS // 3600} h ago, so Stripe may "
                f"have forgotten its identifier, and Stripe's usage could not be read: {why}",
                attempted=False,
            )
            settled.add(key)
            continue
        result.keys_checked += 1
        outcome = ledger.settle_by_summary(
            con, key, answer, f"first tried over {TRUST_IDENTIFIER_SECONDS // 3600} h ago: identifier not trusted"
        )
        settled.add(key)
        if outcome.delivered:
            result.delivered_by_summary += outcome.rows
        else:
            result.replaced += outcome.rows
        if outcome.new_identifier:
            new_identifiers.add(outcome.new_identifier)
    fresh = [
        r
        for r in ledger.pending_events(con, withheld_customers=withheld_customers, held_customers=held_customers)
        if r.identifier in new_identifiers
    ]
    return [r for r in rows if r.key not in settled] + fresh

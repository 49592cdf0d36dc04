"""What Stripe already holds before this ledger sends: baselines after a lost or rebuilt warehouse.

A new ledger's identifiers never collide with an earlier ledger's (ledger.py), so a warehouse
rebuilt from the raw logs would send every open period's usage again and Stripe would count it
twice. Before planning, each meter is *claimed* once per ledger incarnation:

- the meter's Stripe product carries `metadata.metering_ledger`, the incarnation that last claimed
  the meter. Another incarnation there: an earlier ledger may have sent usage to it. No such stamp
  (a meter of a version before this one, or a product made by hand): the same if the product is
  more than a day older than this ledger.
- the claim is recorded in the warehouse (`ops.stripe_ledger_meters`) before the product is
  stamped, so a run that dies in between stamps it next time with the same verdict.

Then, for a meter an earlier ledger may have sent usage to, every key the warehouse bills that this
ledger has not met, in a period that began before the claim (plus the 5 minutes Stripe allows an
event timestamp ahead of its clock) and is not finalized, gets Stripe's meter event summary over the
period as a `baseline` row (seq 0, never sent): the next `sum` row is the difference, a `last` value
is sent only if it differs. A baseline row's time is Stripe's time when read, so a `last` value sent
after it is later than anything an earlier ledger sent. The planner skips a key until its baseline
is read: a read that fails delays the key, it never sends it twice.

Cost: one product read (and one write) per meter per incarnation, one summary per key to baseline
(only after a rebuild, and once).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb
import stripe

from metering_dagster.billing import ledger
from metering_dagster.billing.months import from_epoch
from metering_dagster.billing.objects import _retrieve_or_none
from metering_dagster.billing.reads import in_parallel, pick
from metering_dagster.billing.snapshot import _summary_total
from metering_dagster.billing.values import decimal_from_json_number, metadata_of
from metering_dagster.settings import stripe_concurrency

STAMP_KEY = "metering_ledger"
UNSTAMPED_OLDER_THAN_SECONDS = 24 * 3600
FUTURE_SLACK_SECONDS = 300  # Stripe takes event timestamps up to 5 minutes ahead of its clock


@dataclass
class BaselineResult:
    meters_claimed: int = 0
    earlier_ledger_meters: list[str] = field(default_factory=list)
    baselines: int = 0  # keys whose Stripe total is now the ledger's starting point
    unreadable: list[str] = field(default_factory=list)  # "customer/meter/period: why" (retried next run)


def claim_meters(
    client: stripe.StripeClient,
    con: duckdb.DuckDBPyConnection,
    incarnation: str,
    stripe_now: int,
    result: BaselineResult,
) -> None:
    """Claim every meter this incarnation has not claimed yet (module doc)."""
    ledger_born = con.execute(
        "SELECT epoch(created_at) FROM ops.stripe_ledger_incarnation WHERE incarnation_id = ?", [incarnation]
    ).fetchone()[0]
    unclaimed = con.execute(
        """SELECT m.meter, m.stripe_meter_id, m.stripe_product_id FROM ops.stripe_meters m
           WHERE NOT EXISTS (SELECT 1 FROM ops.stripe_ledger_meters lm WHERE lm.meter = m.meter
                             AND lm.stripe_meter_id = m.stripe_meter_id AND lm.incarnation_id = ?)
           ORDER BY 1""",
        [incarnation],
    ).fetchall()
    for meter, meter_id, product_id in unclaimed:
        product = _retrieve_or_none(client.v1.products, product_id)
        stamp = metadata_of(product).get(STAMP_KEY) if product is not None else None
        if product is None:
            earlier = f"its product {product_id} was not found"
        elif stamp is not None and stamp != incarnation:
            earlier = f"ledger {stamp} claimed it before"
        elif (
            stamp is None
            and float(pick(product, "created", default=0)) < float(ledger_born) - UNSTAMPED_OLDER_THAN_SECONDS
        ):
            earlier = "its product is older than this ledger and carries no ledger's stamp"
        else:
            earlier = None
        con.execute(
            """INSERT INTO ops.stripe_ledger_meters VALUES (?, ?, ?, now(),
                   CASE WHEN ? IS NULL THEN NULL ELSE to_timestamp(?) END, ?, false)""",
            [meter, meter_id, incarnation, earlier, stripe_now + FUTURE_SLACK_SECONDS, earlier],
        )
        result.meters_claimed += 1
        if earlier:
            result.earlier_ledger_meters.append(f"{meter}: {earlier}")
    for meter, product_id in con.execute(
        """SELECT lm.meter, m.stripe_product_id FROM ops.stripe_ledger_meters lm JOIN ops.stripe_meters m
               ON m.meter = lm.meter AND m.stripe_meter_id = lm.stripe_meter_id
           WHERE lm.incarnation_id = ? AND NOT lm.stamped ORDER BY 1""",
        [incarnation],
    ).fetchall():
        try:
            client.v1.products.update(product_id, {"metadata": {STAMP_KEY: incarnation}})
        except stripe.InvalidRequestError as err:
            if getattr(err, "http_status", None) != 404:
                raise
        con.execute(
            "UPDATE ops.stripe_ledger_meters SET stamped = true WHERE meter = ? AND incarnation_id = ?",
            [meter, incarnation],
        )


def read_baselines(
    client: stripe.StripeClient,
    con: duckdb.DuckDBPyConnection,
    incarnation: str,
    stripe_now: dict[str | None, int],
    result: BaselineResult,
) -> None:
    """Stripe's total of every key awaiting its baseline (withheld customers' too: it is only read),
    recorded as a baseline row."""
    keys = [k for k in ledger.keys_awaiting_baseline(con, incarnation) if k[4] is not None]
    if not keys:
        return
    formulas = dict(con.execute("SELECT meter, stripe_formula FROM ops.stripe_meters").fetchall())
    clocks = dict(con.execute("SELECT customer_id, stripe_test_clock_id FROM ops.stripe_customers").fetchall())

    def read(key: tuple):
        try:
            return _summary_total(client, key)
        except stripe.StripeError as err:
            return err

    rows, sent_to = [], {}
    for key, answer in zip(keys, in_parallel(read, keys, stripe_concurrency())):
        customer, meter, ps, pe, stripe_customer, _ = key
        if isinstance(answer, stripe.StripeError):
            result.unreadable.append(
                f"{customer}/{meter}/{from_epoch(ps).date()}: {answer.user_message or type(answer).__name__}"
            )
            continue
        total = decimal_from_json_number(answer[4])
        now = stripe_now.get(clocks.get(customer), max(stripe_now.values()))
        rows.append(
            ledger.LedgerRow(
                identifier=ledger.baseline_identifier(incarnation, customer, meter, ps),
                customer_id=customer,
                meter=meter,
                period_start=from_epoch(ps),
                period_end=from_epoch(pe),
                seq=0,
                stripe_formula=formulas.get(meter, "sum"),
                value=total,
                quantity_after=total,
                event_timestamp=from_epoch(max(ps, min(now - 1, pe - 1))),
            )
        )
        sent_to[customer] = stripe_customer
    ledger.write_baselines(con, rows, sent_to)
    result.baselines += len(rows)


def prepare_baselines(
    client: stripe.StripeClient, con: duckdb.DuckDBPyConnection, stripe_now: dict[str | None, int]
) -> BaselineResult:
    """Claim the meters, then read what Stripe holds where an earlier ledger may have sent usage."""
    incarnation = ledger.ensure_ledger(con)
    result = BaselineResult()
    claim_meters(client, con, incarnation, max(stripe_now.values()), result)
    read_baselines(client, con, incarnation, stripe_now, result)
    return result

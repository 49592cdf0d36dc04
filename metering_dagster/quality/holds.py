"""Holds: what one customer's data must not send to Stripe, named, so that the others are still billed.

A hold names a customer (and the meter and period concerned) with a reason. The quality suites report
holds and validate everything else; the upload withholds the held customers only (`withheld_customers`).
Reasons (DECISIONLOG "Holds"):

- `quantity_too_precise`: a period total to send has more than 15 significant digits, which Stripe does
  not take (a sum of values with many decimals). A correction event that brings the total back within
  15 digits releases it.
- `customer_not_in_contract`: usage to send for a customer the contract no longer lists.
- `billing_anchor_moved`: the ledger holds meter events of periods that the customer's contract anchor no
  longer gives: its anchor moved after usage was sent. Periods already sent cannot move; put the anchor
  back, or bill the customer under a new id from now on.
- `amount_out_of_range`: a shadow invoice line too large to price exactly (`amount_problem` of
  `marts.fct_invoice_lines_expected`).

Holds are computed from the warehouse each time they are asked for, so the checks that report them and the
upload that obeys them see the same holds, and a resolved hold is released at the next run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal

import duckdb

from metering_dagster.billing.months import from_epoch, period_containing
from metering_dagster.contract import Contract
from metering_dagster.schema import ensure_billing_tables

STRIPE_MAX_DIGITS = 15

# The customer × meter × periods whose quantity differs from what the outbox last recorded: the
# rows the upload will send. Rows already sent were validated when they were new, so the gate's
# cost follows what changed, not the whole history.
TO_SEND_SQL = """
    select u.*
    from marts.fct_usage_by_period as u
    left join (
        select customer_id, meter, period_start, arg_max(quantity_after, seq) as quantity
        from ops.stripe_ledger group by all
    ) as sent using (customer_id, meter, period_start)
    where sent.quantity is distinct from u.quantity
"""


@dataclass(frozen=True)
class Hold:
    customer_id: str
    reason: str
    detail: str
    meter: str | None = None
    period_start: str | None = None  # ISO 8601, UTC

    def as_dict(self) -> dict[str, str | None]:
        return asdict(self)

    def describe(self) -> str:
        where = " ".join(p for p in (self.meter, self.period_start and f"period {self.period_start[:10]}") if p)
        return f"{self.customer_id}{' ' + where if where else ''}: {self.reason} ({self.detail})"


def significant_digits(value) -> int:
    if value is None:
        return 0
    digits = Decimal(value).normalize().as_tuple().digits
    return max(len(digits), 1)


def _iso(ts: datetime | int) -> str:
    return (from_epoch(ts) if isinstance(ts, int) else ts).isoformat()


def _ensure_outbox(con: duckdb.DuckDBPyConnection) -> None:
    ensure_billing_tables(con)  # before the first upload the outbox does not exist yet


def usage_holds(con: duckdb.DuckDBPyConnection, contract: Contract) -> list[Hold]:
    """Holds on the usage to send: totals Stripe cannot take, customers out of the contract, moved anchors."""
    _ensure_outbox(con)
    anchors = {c.id: c.billing_anchor for c in contract.customers}
    holds = []
    for customer, meter, period_start, quantity in con.execute(
        f"select customer_id, meter, epoch(period_start)::bigint, quantity from ({TO_SEND_SQL}) order by all"
    ).fetchall():
        if customer not in anchors:
            holds.append(
                Hold(
                    customer,
                    "customer_not_in_contract",
                    "usage to send for a customer the contract no longer lists",
                    meter,
                    _iso(period_start),
                )
            )
        elif (digits := significant_digits(quantity)) > STRIPE_MAX_DIGITS:
            holds.append(
                Hold(
                    customer,
                    "quantity_too_precise",
                    f"the period total {Decimal(quantity).normalize():f} has {digits} significant digits, Stripe takes "
                    f"{STRIPE_MAX_DIGITS}: a correction event that brings it within {STRIPE_MAX_DIGITS} releases it",
                    meter,
                    _iso(period_start),
                )
            )
    for customer, meter, period_start in con.execute(
        "select distinct customer_id, meter, epoch(period_start)::bigint from ops.stripe_ledger "
        "where status = 'pending' order by all"
    ).fetchall():
        if customer not in anchors:  # planned before it left the contract: not sent while it is out
            holds.append(
                Hold(
                    customer,
                    "customer_not_in_contract",
                    "meter events planned before the contract dropped the customer",
                    meter,
                    _iso(period_start),
                )
            )
    return holds + _moved_anchor_holds(con, anchors)


def _moved_anchor_holds(con: duckdb.DuckDBPyConnection, anchors: dict[str, datetime]) -> list[Hold]:
    """One hold per customer whose ledger has periods that its contract anchor no longer gives."""
    holds, seen = [], set()
    for customer, start, end in con.execute(
        """select distinct customer_id, epoch(period_start)::bigint, epoch(period_end)::bigint
           from ops.stripe_ledger order by all"""
    ).fetchall():
        anchor = anchors.get(customer)
        if anchor is None or customer in seen:
            continue
        start, end = from_epoch(start), from_epoch(end)
        if start < anchor or period_containing(anchor, start) != (start, end):
            seen.add(customer)
            holds.append(
                Hold(
                    customer,
                    "billing_anchor_moved",
                    f"Stripe was sent usage of the period {_iso(start)} to {_iso(end)}, which the contract's anchor "
                    f"{_iso(anchor)} does not give: sent periods cannot move; put the anchor back, or bill the "
                    "customer under a new id",
                    None,
                    _iso(start),
                )
            )
    return holds


def invoice_holds(con: duckdb.DuckDBPyConnection) -> list[Hold]:
    """Holds on the shadow invoice lines of the periods to send: lines too large to price."""
    _ensure_outbox(con)
    return [
        Hold(
            customer,
            problem,
            f"quantity {Decimal(quantity).normalize():f} is too large to price exactly",
            meter,
            _iso(period_start),
        )
        for customer, meter, period_start, quantity, problem in con.execute(
            f"""select e.customer_id, e.meter, epoch(e.period_start)::bigint, e.quantity, e.amount_problem
                from marts.fct_invoice_lines_expected as e
                where e.amount_problem is not null and exists (
                    select 1 from ({TO_SEND_SQL}) as t
                    where t.customer_id = e.customer_id and t.period_start = e.period_start)
                order by all"""
        ).fetchall()
    ]


def held_reasons(con: duckdb.DuckDBPyConnection, contract: Contract) -> dict[str, str]:
    """Each customer whose upload is held this run, with its first hold's reason."""
    reasons: dict[str, str] = {}
    for hold in [*usage_holds(con, contract), *invoice_holds(con)]:
        reasons.setdefault(hold.customer_id, hold.reason)
    return reasons


def withheld_customers(con: duckdb.DuckDBPyConnection, contract: Contract) -> frozenset[str]:
    """The customers whose upload is held this run (every other customer is uploaded)."""
    return frozenset(held_reasons(con, contract))

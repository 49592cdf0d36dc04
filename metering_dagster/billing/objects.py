"""Create or find, idempotently, the Stripe objects that the contract describes.

In `environment: test`: one shared test clock, found by name, frozen at the contract's
`test_clock_start`. Then per meter: a billing meter (`event_name` = meter key), a product
(deterministic id) and a metered price found by `lookup_key`; per customer: a Stripe customer
carrying `metadata.metering_customer_id` (on the test clock in test mode) and one subscription
with one item per metered price. The mapping is kept in `ops.stripe_*`; a second call creates
nothing. Last, the state of each subscription's period invoices is read (`ops.period_invoices`),
so that the upload that follows knows which periods Stripe has finalized. Prices are immutable in Stripe: a changed price becomes a new price that takes over
the lookup key (`transfer_lookup_key`), its contract fingerprint in its metadata, and the
subscription items move to it (no proration: metered usage is priced at period end).

Cost: meters and prices are read every run (a few requests). A customer whose recorded mapping
still matches the contract (same test clock, same anchor, every item on the meter's current
price) and was verified in Stripe less than `METERING_STRIPE_VERIFY_HOURS` ago (default 24) is
trusted without a request: an hourly run with 5,000 customers must not make 10,000 calls to
re-read objects it created. A new, changed or stale customer is verified as described above.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb
import stripe

from metering_dagster.billing.invoices import refresh_period_invoices
from metering_dagster.billing.months import (
    add_months,
    epoch,
    from_epoch,
    month_boundary,
    period_containing,
    period_index,
)
from metering_dagster.billing.problems import CustomerProblems
from metering_dagster.billing.reads import pick
from metering_dagster.billing.values import decimal_str, metadata_of
from metering_dagster.contract.model import Contract, Customer, Meter
from metering_dagster.schema import ensure_billing_tables
from metering_dagster.settings import stripe_verify_hours

TEST_CLOCK_NAME = "metering-pipeline"
CUSTOMER_PAYLOAD_KEY = "stripe_customer_id"
VALUE_PAYLOAD_KEY = "value"


class StripeSyncError(Exception):
    """Stripe holds an object that contradicts the contract and cannot be changed in place."""


@dataclass
class SyncResult:
    test_clock_id: str | None = None
    created: Counter = field(default_factory=Counter)  # kind -> objects created
    updated: Counter = field(default_factory=Counter)  # kind -> objects changed (e.g. item moved to a new price)
    stripe_customer_ids: dict[str, str] = field(default_factory=dict)  # metering customer id -> Stripe id
    stripe_meter_ids: dict[str, str] = field(default_factory=dict)
    stripe_price_ids: dict[str, str] = field(default_factory=dict)  # meter -> current price id
    trusted_customers: int = 0  # mapping recorded and recently verified: no request made
    problems: list[str] = field(default_factory=list)  # customers whose Stripe objects could not be read

    @property
    def total_created(self) -> int:
        return sum(self.created.values())

    def metadata(self) -> dict[str, Any]:
        return {
            "created": self.total_created,
            **{f"created_{k}": n for k, n in sorted(self.created.items())},
            **{f"updated_{k}": n for k, n in sorted(self.updated.items())},
            "test_clock_id": self.test_clock_id or "-",
            "customers": len(self.stripe_customer_ids),
            "customers_trusted": self.trusted_customers,
            "meters": len(self.stripe_meter_ids),
            "customers_unreadable": len(self.problems),
        }

    def summary(self) -> str:
        made = ", ".join(f"{n} {k}" for k, n in sorted(self.created.items())) or "nothing"
        moved = ", ".join(f"{n} {k}" for k, n in sorted(self.updated.items()))
        return f"Stripe objects: created {made}" + (f"; updated {moved}" if moved else "")


def product_id(meter_key: str) -> str:
    return f"metering_{meter_key}"


def price_lookup_key(meter_key: str) -> str:
    return f"metering_{meter_key}"


def _currency(contract: Contract) -> str:
    return contract.currency.lower()


def _now() -> datetime:
    return from_epoch(int(time.time()))


def _is_missing(err: stripe.StripeError) -> bool:
    return isinstance(err, stripe.InvalidRequestError) and (
        getattr(err, "code", None) == "resource_missing" or getattr(err, "http_status", None) == 404
    )


def _retrieve_or_none(service: Any, object_id: str | None) -> Any:
    """The object, or None when we know no id or Stripe no longer has it."""
    if object_id is None:
        return None
    try:
        return service.retrieve(object_id)
    except stripe.InvalidRequestError as err:
        if not _is_missing(err):
            raise
        return None


# -- test clock -----------------------------------------------------------------------------


def _sync_test_clock(client: stripe.StripeClient, con, contract: Contract, result: SyncResult) -> Any:
    clocks = client.v1.test_helpers.test_clocks
    row = con.execute("SELECT test_clock_id FROM ops.stripe_test_clocks ORDER BY synced_at DESC LIMIT 1").fetchone()
    clock = _retrieve_or_none(clocks, row[0] if row else None)
    if clock is None or getattr(clock, "deleted", False):
        clock = next((c for c in clocks.list({"limit": 100}).auto_paging_iter() if c.name == TEST_CLOCK_NAME), None)
    if clock is None:
        clock = clocks.create(
            {"frozen_time": epoch(contract.effective_test_clock_start), "name": TEST_CLOCK_NAME},
            {"idempotency_key": f"metering-test-clock-{epoch(contract.effective_test_clock_start)}"},
        )
        result.created["test_clocks"] += 1
    con.execute("DELETE FROM ops.stripe_test_clocks")
    con.execute(
        "INSERT INTO ops.stripe_test_clocks VALUES (?, ?, to_timestamp(?), now())",
        [clock.id, clock.name or TEST_CLOCK_NAME, int(clock.frozen_time)],
    )
    result.test_clock_id = clock.id
    return clock


# -- meters, products, prices ----------------------------------------------------------------


def _sync_meters(client: stripe.StripeClient, con, contract: Contract, result: SyncResult) -> None:
    meters = client.v1.billing.meters
    by_event = {}
    for m in meters.list({"limit": 100}).auto_paging_iter():
        # an active meter wins over a deactivated one holding the same event name
        if m.event_name not in by_event or m.status == "active":
            by_event[m.event_name] = m
    for mp in contract.meters:
        m = by_event.get(mp.key)
        if m is None:
            m = meters.create(
                {
                    "display_name": mp.display_name,
                    "event_name": mp.key,
                    "default_aggregation": {"formula": mp.stripe_formula},
                    "customer_mapping": {"type": "by_id", "event_payload_key": CUSTOMER_PAYLOAD_KEY},
                    "value_settings": {"event_payload_key": VALUE_PAYLOAD_KEY},
                },
                {"idempotency_key": f"metering-meter-{mp.key}-{mp.stripe_formula}"},
            )
            result.created["meters"] += 1
        else:
            formula = m.default_aggregation.formula
            if formula != mp.stripe_formula:
                raise StripeSyncError(
                    f"Stripe meter {m.id} (event_name {mp.key!r}) aggregates with {formula!r} but the contract's "
                    f"aggregation {mp.aggregation!r} needs {mp.stripe_formula!r}; Stripe meters are immutable: "
                    "rename the meter key in the contract or deactivate the Stripe meter"
                )
            if m.status != "active":
                m = meters.reactivate(m.id)
                result.updated["meters"] += 1
            if m.display_name != mp.display_name:
                meters.update(m.id, {"display_name": mp.display_name})
                result.updated["meters"] += 1
        prod = _sync_product(client, mp, result)
        con.execute(
            "INSERT OR REPLACE INTO ops.stripe_meters VALUES (?, ?, ?, ?, ?, now())",
            [mp.key, m.id, mp.key, mp.stripe_formula, prod],
        )
        result.stripe_meter_ids[mp.key] = m.id


def _sync_product(client: stripe.StripeClient, mp: Meter, result: SyncResult) -> str:
    pid = product_id(mp.key)
    if _retrieve_or_none(client.v1.products, pid) is None:
        client.v1.products.create(
            {"id": pid, "name": mp.display_name, "metadata": {"metering_meter": mp.key}},
            {"idempotency_key": f"metering-product-{pid}"},
        )
        result.created["products"] += 1
    return pid


def price_params(mp: Meter, currency: str, stripe_meter_id: str) -> dict[str, Any]:
    """Create-params of the Stripe price for a contract meter (amounts as decimal strings, in cents)."""
    p = mp.price
    params: dict[str, Any] = {
        "currency": currency,
        "product": product_id(mp.key),
        "lookup_key": price_lookup_key(mp.key),
        "recurring": {"interval": "month", "usage_type": "metered", "meter": stripe_meter_id},
        "metadata": {"metering_meter": mp.key, "price_fingerprint": p.fingerprint},
        "nickname": f"{mp.display_name} ({p.model})",
    }
    if p.model == "per_unit":
        params["billing_scheme"] = "per_unit"
        params["unit_amount_decimal"] = decimal_str(p.unit_amount_decimal)
    elif p.model == "package":
        params["billing_scheme"] = "per_unit"
        params["unit_amount_decimal"] = decimal_str(p.package.unit_amount_decimal)
        params["transform_quantity"] = {"divide_by": int(p.package.size), "round": p.package.round}
    elif p.model in ("graduated", "volume"):
        params["billing_scheme"] = "tiered"
        params["tiers_mode"] = p.model
        tiers = []
        for t in p.tiers:
            if t.up_to is not None and t.up_to != t.up_to.to_integral_value():
                raise StripeSyncError(f"meter {mp.key}: tier up_to must be a whole number for Stripe")
            tiers.append(
                {
                    "up_to": "inf" if t.up_to is None else int(t.up_to),
                    "unit_amount_decimal": decimal_str(t.unit_amount_decimal),
                    "flat_amount_decimal": decimal_str(t.flat_amount_decimal),
                }
            )
        params["tiers"] = tiers
    else:
        raise StripeSyncError(f"meter {mp.key}: unknown price model {p.model!r}")
    return params


def _sync_prices(client: stripe.StripeClient, con, contract: Contract, result: SyncResult) -> None:
    keys = [price_lookup_key(m.key) for m in contract.meters]
    found: dict[str, Any] = {}
    for i in range(0, len(keys), 10):  # Stripe takes up to 10 lookup keys per list call
        page = client.v1.prices.list({"lookup_keys": keys[i : i + 10], "limit": 100, "active": True})
        for price in page.auto_paging_iter():
            found[price.lookup_key] = price
    for mp in contract.meters:
        meter_id = result.stripe_meter_ids[mp.key]
        price = found.get(price_lookup_key(mp.key))
        if price is not None:
            meta = metadata_of(price)
            same = (
                meta.get("price_fingerprint") == mp.price.fingerprint
                and price.recurring is not None
                and price.recurring.meter == meter_id
                and price.currency == _currency(contract)
            )
            if not same:
                _record_price(con, price.id, mp.key, meta.get("price_fingerprint") or "", current=False)
                price = None
        if price is None:
            params = price_params(mp, _currency(contract), meter_id)
            if found.get(price_lookup_key(mp.key)) is not None:
                params["transfer_lookup_key"] = True
            price = client.v1.prices.create(
                params, {"idempotency_key": f"metering-price-{mp.key}-{mp.price.fingerprint}-{meter_id}"}
            )
            result.created["prices"] += 1
        con.execute(
            "UPDATE ops.stripe_prices SET is_current = false WHERE meter = ? AND stripe_price_id <> ?",
            [mp.key, price.id],
        )
        _record_price(con, price.id, mp.key, mp.price.fingerprint, current=True)
        result.stripe_price_ids[mp.key] = price.id


def _record_price(con, price_id: str, meter: str, fingerprint: str, *, current: bool) -> None:
    con.execute(
        """INSERT INTO ops.stripe_prices VALUES (?, ?, ?, ?, ?, now())
           ON CONFLICT (stripe_price_id) DO UPDATE SET is_current = excluded.is_current, synced_at = excluded.synced_at""",
        [price_id, meter, price_lookup_key(meter), fingerprint, current],
    )


# -- customers and subscriptions ----------------------------------------------------------------


def _trusted_customers(con, contract: Contract, clock_id: str | None, result: SyncResult) -> set[str]:
    """Customers whose recorded mapping matches the contract and was verified recently (module doc)."""
    hours = stripe_verify_hours()
    rows = con.execute(
        """SELECT c.customer_id, c.stripe_customer_id, c.stripe_test_clock_id, epoch(c.billing_anchor)::BIGINT,
                  list(i.meter || '=' || i.stripe_price_id ORDER BY i.meter)
           FROM ops.stripe_customers c JOIN ops.stripe_subscription_items i USING (customer_id)
           WHERE c.stripe_subscription_id IS NOT NULL AND c.synced_at > now() - to_microseconds((? * 3600e6)::BIGINT)
           GROUP BY ALL""",
        [hours],
    ).fetchall()
    want_items = sorted(f"{m.key}={result.stripe_price_ids[m.key]}" for m in contract.meters)
    by_id = {r[0]: r for r in rows}
    trusted = set()
    for cp in contract.customers:
        row = by_id.get(cp.id)
        if row and row[2] == clock_id and row[3] == epoch(cp.billing_anchor) and sorted(row[4]) == want_items:
            trusted.add(cp.id)
            result.stripe_customer_ids[cp.id] = row[1]
    return trusted


def _sync_customers(
    client: stripe.StripeClient,
    con,
    contract: Contract,
    clock: Any,
    result: SyncResult,
    trusted: set[str],
    problems: CustomerProblems,
) -> None:
    known = dict(con.execute("SELECT customer_id, stripe_customer_id FROM ops.stripe_customers").fetchall())
    listed: dict[str, Any] | None = None
    clock_id = clock.id if clock is not None else None
    for cp in contract.customers:
        if cp.id in trusted:
            continue
        with problems.guard(cp.id):
            cus = _retrieve_or_none(client.v1.customers, known.get(cp.id))
            if cus is not None and (getattr(cus, "deleted", False) or _clock_of(cus) != clock_id):
                cus = None
            if cus is None:
                if listed is None:
                    params: dict[str, Any] = {"limit": 100}
                    if clock_id:
                        params["test_clock"] = clock_id
                    listed = {}
                    for c in client.v1.customers.list(params).auto_paging_iter():
                        mid = metadata_of(c).get("metering_customer_id")
                        if mid and _clock_of(c) == clock_id:
                            listed.setdefault(mid, c)
                cus = listed.get(cp.id)
            if cus is None:
                params = {"name": cp.id, "metadata": {"metering_customer_id": cp.id}}
                if clock_id:
                    params["test_clock"] = clock_id
                # Naming the object it replaces keeps a retry idempotent while a deleted customer gets a new one
                # (the same key would replay the deleted customer for 24 hours).
                replaces = f"-replacing-{known[cp.id]}" if known.get(cp.id) else ""
                cus = client.v1.customers.create(
                    params, {"idempotency_key": f"metering-customer-{cp.id}-{clock_id or 'live'}{replaces}"}
                )
                result.created["customers"] += 1
            con.execute(
                """INSERT INTO ops.stripe_customers (customer_id, stripe_customer_id, stripe_test_clock_id,
                       billing_anchor, synced_at) VALUES (?, ?, ?, to_timestamp(?), now())
                   ON CONFLICT (customer_id) DO UPDATE SET stripe_customer_id = excluded.stripe_customer_id,
                       stripe_test_clock_id = excluded.stripe_test_clock_id, billing_anchor = excluded.billing_anchor,
                       synced_at = excluded.synced_at""",
                [cp.id, cus.id, clock_id, epoch(cp.billing_anchor)],
            )
            result.stripe_customer_ids[cp.id] = cus.id


def _clock_of(obj: Any) -> str | None:
    clock = getattr(obj, "test_clock", None)
    return clock if clock is None or isinstance(clock, str) else clock.id


def _anchor_params(cp: Customer, now: datetime) -> dict[str, Any]:
    """Subscription periods equal to the contract's, whatever the day the subscription is created.

    A future anchor is the first period end itself. Otherwise the subscription starts at the beginning of the
    contract period under way (backdated) and its anchor is given by day of month and time: created on
    September 30 for an anchor on the 31st, a `billing_cycle_anchor` of September 30 would make Stripe bill on
    the 30th for ever, where `billing_cycle_anchor_config` keeps the 31st (the last day of shorter months).
    """
    anchor = cp.billing_anchor
    if anchor > now:
        return {"billing_cycle_anchor": epoch(anchor), "proration_behavior": "none"}
    start = add_months(anchor, period_index(anchor, now))
    params: dict[str, Any] = {
        "billing_cycle_anchor_config": {
            "day_of_month": anchor.day,
            "hour": anchor.hour,
            "minute": anchor.minute,
            "second": anchor.second,
        },
        "proration_behavior": "none",
    }
    if start < now:
        params["backdate_start_date"] = epoch(start)
    return params


def _sync_subscriptions(
    client: stripe.StripeClient,
    con,
    contract: Contract,
    clock: Any,
    result: SyncResult,
    trusted: set[str],
    problems: CustomerProblems,
) -> None:
    now = from_epoch(int(clock.frozen_time)) if clock is not None else _now()
    price_meter = dict(con.execute("SELECT stripe_price_id, meter FROM ops.stripe_prices").fetchall())
    meter_key_by_id = {v: k for k, v in result.stripe_meter_ids.items()}
    known = dict(
        con.execute(
            "SELECT customer_id, stripe_subscription_id FROM ops.stripe_customers WHERE stripe_subscription_id IS NOT NULL"
        ).fetchall()
    )
    for cp in contract.customers:
        if cp.id in trusted or cp.id in problems:
            continue
        with problems.guard(cp.id):
            sub = _sync_subscription(client, con, contract, cp, known.get(cp.id), now, result)
            _sync_items(client, con, contract, cp, sub, price_meter, meter_key_by_id, result)
            record_subscription_period(con, cp, sub, now)
    # a customer the contract no longer lists is not billed by us: its subscription's periods are not checked
    con.execute(
        "DELETE FROM ops.stripe_subscription_periods WHERE NOT list_contains(?, customer_id)",
        [[c.id for c in contract.customers]],
    )


def _sync_subscription(
    client: stripe.StripeClient,
    con,
    contract: Contract,
    cp: Customer,
    known_id: str | None,
    now: datetime,
    result: SyncResult,
) -> Any:
    """The customer's subscription: the recorded one, else one found by its metadata, else a new one."""
    cus_id = result.stripe_customer_ids[cp.id]
    sub = _retrieve_or_none(client.v1.subscriptions, known_id)
    if sub is not None and (sub.status in ("canceled", "incomplete_expired") or sub.customer != cus_id):
        sub = None
    if sub is None:
        for s in client.v1.subscriptions.list({"customer": cus_id, "status": "all", "limit": 100}).auto_paging_iter():
            if (
                s.status not in ("canceled", "incomplete_expired")
                and metadata_of(s).get("metering_customer_id") == cp.id
            ):
                sub = s
                break
    if sub is None:
        params = {
            "customer": cus_id,
            "items": [{"price": result.stripe_price_ids[m.key]} for m in contract.meters],
            "collection_method": "send_invoice",
            "days_until_due": 30,
            "metadata": {"metering_customer_id": cp.id},
            **_anchor_params(cp, now),
        }
        sub = client.v1.subscriptions.create(
            params,
            {"idempotency_key": f"metering-subscription-{cus_id}" + (f"-replacing-{known_id}" if known_id else "")},
        )
        result.created["subscriptions"] += 1
    con.execute("UPDATE ops.stripe_customers SET stripe_subscription_id = ? WHERE customer_id = ?", [sub.id, cp.id])
    return sub


# -- Stripe's billing periods against the contract's ------------------------------------------------

# How far ahead a subscription's billing rule is compared with the contract: every month length and a leap February.
PERIODS_AHEAD = 48


def _stripe_billing_day(sub: Any) -> tuple[datetime, int]:
    """Stripe's rule for a subscription's period ends: its anchor, and the day of month every later end falls on."""
    anchor = from_epoch(int(pick(sub, "billing_cycle_anchor")))
    day = pick(sub, "billing_cycle_anchor_config", "day_of_month")
    return anchor, int(day) if day is not None else anchor.day


def _stripe_current_period(sub: Any) -> tuple[datetime, datetime] | None:
    items = pick(sub, "items", "data", default=[])
    start, end = (
        (pick(items[0], "current_period_start"), pick(items[0], "current_period_end")) if items else (None, None)
    )
    return None if start is None or end is None else (from_epoch(int(start)), from_epoch(int(end)))


def subscription_period_problem(cp: Customer, sub: Any) -> str | None:
    """Where a subscription's periods differ, or will differ, from the contract's, both periods named; else None.

    Its current period is compared with the contract's, then the periods Stripe's rule (anchor and day of month)
    gives for the next four years: a subscription anchored on September 30 for a contract anchored on the 31st
    agrees until October 30, where Stripe ends a period that the contract ends on October 31.
    """
    contract_anchor = cp.billing_anchor

    def differs(start: datetime, end: datetime) -> str | None:
        if end <= contract_anchor:  # before the contract's first period: nothing to bill
            return None
        ours = period_containing(contract_anchor, max(start, contract_anchor))
        if (start, end) == ours:
            return None
        return (
            f"Stripe bills [{start.isoformat()}, {end.isoformat()}) where the contract bills "
            f"[{ours[0].isoformat()}, {ours[1].isoformat()})"
        )

    current = _stripe_current_period(sub)
    if current is not None and (problem := differs(*current)):
        return f"{problem} (the current period)"
    anchor, day = _stripe_billing_day(sub)
    # Stripe may return an anchor beyond the first period end (a configured day that the creation month lacks)
    for k in range(-2, PERIODS_AHEAD):
        start, end = month_boundary(anchor, k, day), month_boundary(anchor, k + 1, day)
        if current is not None and start < current[1]:
            continue
        if problem := differs(start, end):
            rule = "billing_cycle_anchor_config day_of_month" if pick(sub, "billing_cycle_anchor_config") else "day"
            return (
                f"{problem}: the subscription's billing_cycle_anchor {anchor.isoformat()} ({rule} {day}) does "
                f"not follow the contract's billing_anchor {contract_anchor.isoformat()}"
            )
    return None


def record_subscription_period(con, cp: Customer, sub: Any, now: datetime) -> None:
    current = _stripe_current_period(sub)
    con.execute(
        """INSERT OR REPLACE INTO ops.stripe_subscription_periods VALUES (?, ?, to_timestamp(?), to_timestamp(?),
               to_timestamp(?), ?, ?, now())""",
        [
            cp.id,
            pick(sub, "id"),
            int(pick(sub, "billing_cycle_anchor")),
            None if current is None else epoch(current[0]),
            None if current is None else epoch(current[1]),
            _stripe_billing_day(sub)[1],
            subscription_period_problem(cp, sub),
        ],
    )


def _item_meter(item: Any, price_meter: dict[str, str], meter_key_by_id: dict[str, str]) -> str | None:
    price = item.price
    if price.id in price_meter:
        return price_meter[price.id]
    meter_id = price.recurring.meter if price.recurring is not None else None
    return meter_key_by_id.get(meter_id)


def _items_of(client: stripe.StripeClient, sub: Any) -> list[Any]:
    embedded = sub["items"]  # `sub.items` would be dict.items
    if embedded.has_more:
        return list(client.v1.subscription_items.list({"subscription": sub.id, "limit": 100}).auto_paging_iter())
    return list(embedded.data)


def _sync_items(client, con, contract: Contract, cp: Customer, sub: Any, price_meter, meter_key_by_id, result) -> None:
    """One item per meter on the meter's current price: add missing items, move items off old prices."""
    by_meter = {}
    for item in _items_of(client, sub):
        key = _item_meter(item, price_meter, meter_key_by_id)
        if key is not None:
            by_meter.setdefault(key, item)
    changes, added, moved = [], 0, 0
    for mp in contract.meters:
        want = result.stripe_price_ids[mp.key]
        item = by_meter.get(mp.key)
        if item is None:
            changes.append({"price": want})
            added += 1
        elif item.price.id != want:
            changes.append({"id": item.id, "price": want})
            moved += 1
    if changes:
        sub = client.v1.subscriptions.update(sub.id, {"items": changes, "proration_behavior": "none"})
        if added:
            result.created["subscription_items"] += added
        if moved:
            result.updated["subscription_items"] += moved
        by_meter = {}
        for item in _items_of(client, sub):
            by_meter.setdefault(price_meter.get(item.price.id) or _item_meter(item, price_meter, meter_key_by_id), item)
    for mp in contract.meters:
        want = result.stripe_price_ids[mp.key]
        item = by_meter.get(mp.key)
        if item is None or item.price.id != want:
            raise StripeSyncError(
                f"subscription {sub.id} of customer {cp.id}: Stripe did not put meter {mp.key} on price {want}"
            )
        con.execute(
            "INSERT OR REPLACE INTO ops.stripe_subscription_items VALUES (?, ?, ?, ?, now())",
            [cp.id, mp.key, item.id, want],
        )


def sync_stripe_objects(client: stripe.StripeClient, contract: Contract, con: duckdb.DuckDBPyConnection) -> SyncResult:
    """Create or find every Stripe object of the contract; record the mapping in `ops.stripe_*`."""
    ensure_billing_tables(con)
    result = SyncResult()
    clock = None if contract.environment == "live" else _sync_test_clock(client, con, contract, result)
    _sync_meters(client, con, contract, result)
    _sync_prices(client, con, contract, result)
    trusted = _trusted_customers(con, contract, clock.id if clock is not None else None, result)
    problems = CustomerProblems("object sync")
    _sync_customers(client, con, contract, clock, result, trusted, problems)
    _sync_subscriptions(client, con, contract, clock, result, trusted, problems)
    result.trusted_customers = len(trusted)
    # which periods Stripe has finalized since: the ledger must not send to those (invoices.py)
    now = from_epoch(int(clock.frozen_time)) if clock is not None else _now()
    refresh_period_invoices(client, con, now, problems)
    problems.record(con)
    result.problems = problems.lines()
    return result


def stripe_objects_exist(con: duckdb.DuckDBPyConnection, contract: Contract) -> bool:
    """Whether every contract customer and meter has its Stripe mapping (i.e. a sync has run)."""
    ensure_billing_tables(con)
    customers = {
        r[0]
        for r in con.execute(
            "SELECT customer_id FROM ops.stripe_customers WHERE stripe_subscription_id IS NOT NULL"
        ).fetchall()
    }
    meters = {r[0] for r in con.execute("SELECT meter FROM ops.stripe_meters").fetchall()}
    return {c.id for c in contract.customers} <= customers and {m.key for m in contract.meters} <= meters

"""Period close: when a subscription's clock passes its period end, bill the period.

For each period [start, end) crossed: a `subscription_cycle` invoice in draft, one line per metered price
(quantity = the meter's aggregate over the period for the customer), licensed prices billed for the next
period in advance, pending invoice items attached. The draft follows the meters until it is finalized,
which happens when the clock reaches end + grace period and `auto_advance` is true.
"""

from __future__ import annotations

from decimal import Decimal

from . import invoice_model, pricing
from .timeutil import next_boundary


def sub_interval(sub: dict) -> tuple[str, int]:
    return sub["_interval"], sub["_interval_count"]


def period_end_after(sub: dict, t: int) -> int:
    """The subscription's first period boundary strictly after t: the one rule for every period end.

    Boundaries follow `billing_cycle_anchor` by Stripe's month arithmetic, on the anchor's own day and time,
    or, with a `billing_cycle_anchor_config`, on its configured day and time (the 31st stays the 31st
    after a 30th).
    """
    interval, count = sub_interval(sub)
    config = sub.get("billing_cycle_anchor_config")
    if config is None:
        return next_boundary(sub["billing_cycle_anchor"], t, interval, count)
    return next_boundary(
        sub["billing_cycle_anchor"],
        t,
        interval,
        count,
        day_of_month=config["day_of_month"],
        at=(config["hour"], config["minute"], config["second"]),
    )


def _bill_period(tx, sub: dict, start: int, end: int, next_end: int, grace: int):
    customer = tx.get(sub["customer"], "customer", include_deleted=True)
    inv = invoice_model.new_invoice(
        customer,
        created=end,
        billing_reason="subscription_cycle",
        currency=sub["currency"],
        subscription=sub,
        period_start=start,
        period_end=end,
    )
    inv["automatically_finalizes_at"] = end + grace
    tx.insert(inv)
    for item in sub["items"]["data"]:
        price = tx.get(item["price"]["id"], "price")
        name = (tx.get(price["product"], "product") or {}).get("name", "")
        if price["recurring"]["usage_type"] == "metered":
            line = invoice_model.new_line(
                inv,
                kind="metered",
                amount=0,
                currency=price["currency"],
                period=(start, end),
                description=name,
                price=price,
                quantity=Decimal(0),
                subscription=sub["id"],
                subscription_item=item["id"],
            )
        else:
            q = Decimal(item.get("quantity") or 1)
            line = invoice_model.new_line(
                inv,
                kind="licensed",
                amount=pricing.line_amount(price, price.get("_tiers"), q),
                currency=price["currency"],
                period=(end, next_end),
                description=f"{q} × {name}",
                price=price,
                quantity=q,
                subscription=sub["id"],
                subscription_item=item["id"],
            )
        tx.insert(line)
    attach_pending_items(tx, inv, sub["id"])
    invoice_model.refresh_draft(tx, inv)
    sub["latest_invoice"] = inv["id"]


def attach_pending_items(tx, inv: dict, subscription_id: str | None):
    for ii in tx.find("invoiceitem", order="asc", customer=inv["customer"], invoice=None):
        if ii.get("_subscription") not in (None, subscription_id):
            continue
        ii["invoice"] = inv["id"]
        tx.save(ii)
        tx.insert(line_for_item(tx, inv, ii))


def line_for_item(tx, inv: dict, ii: dict) -> dict:
    price_id = ((ii.get("pricing") or {}).get("price_details") or {}).get("price")
    price = tx.get(price_id, "price") if price_id else None
    return invoice_model.new_line(
        inv,
        kind="invoiceitem",
        amount=ii["amount"],
        currency=ii["currency"],
        period=(ii["period"]["start"], ii["period"]["end"]),
        description=ii["description"],
        price=price,
        quantity=Decimal(ii["quantity"]),
        subscription=ii.get("_subscription"),
        invoice_item=ii["id"],
        metadata=ii.get("metadata"),
    )


def process_subscription(tx, sub: dict, now: int, grace: int) -> dict:
    changed = False
    while sub["status"] in ("active", "past_due") and now >= sub["_period_end"]:
        start, end = sub["_period_start"], sub["_period_end"]
        next_end = period_end_after(sub, end)
        _bill_period(tx, sub, start, end, next_end, grace)
        sub["_period_start"], sub["_period_end"] = end, next_end
        for item in sub["items"]["data"]:
            item["current_period_start"], item["current_period_end"] = end, next_end
        changed = True
    if changed:
        tx.save(sub)
    return sub


def finalize_due(tx, drafts: list[dict], now: int):
    for inv in drafts:
        due = inv.get("automatically_finalizes_at")
        if inv["auto_advance"] and due is not None and now >= due:
            invoice_model.finalize(tx, inv, now)


def process_clock(tx, clock_id: str, now: int, grace: int):
    """Everything on a test clock, at its new frozen_time."""
    for sub in tx.find("subscription", order="asc", test_clock=clock_id):
        process_subscription(tx, sub, now, grace)
    finalize_due(tx, tx.find("invoice", order="asc", status="draft", test_clock=clock_id), now)


def process_wall_clock(tx, now: int, grace: int):
    """Objects not on a test clock follow the wall clock; brought up to date whenever they are read."""
    for sub in tx.find("subscription", order="asc", test_clock=None, status="active"):
        if now >= sub["_period_end"]:
            process_subscription(tx, sub, now, grace)
    finalize_due(tx, tx.find("invoice", order="asc", status="draft", test_clock=None), now)

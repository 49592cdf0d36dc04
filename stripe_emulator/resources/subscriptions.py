"""Subscriptions with metered (and licensed) items; periods follow `billing_cycle_anchor` (or the day and time
of a `billing_cycle_anchor_config`) by Stripe's month arithmetic. Period closes are in billing_cycle.py."""

from __future__ import annotations

from .. import billing_cycle
from ..errors import invalid
from ..params import Params, merge_metadata
from ..storage import new_id
from ..timeutil import configured_anchor, time_of_day
from .common import list_object, list_page, require, str_filters, update_fields
from .invoices import bring_up_to_date
from .subscription_items import (
    INTERVAL_MISMATCH,
    apply_item_changes,
    check_unique_prices,
    index_items,
    new_item,
    proration_behavior,
    recurring_price,
)

ANCHOR_CONFIG_RANGES = (
    ("day_of_month", 1, 31),
    ("month", 1, 12),
    ("hour", 0, 23),
    ("minute", 0, 59),
    ("second", 0, 59),
)


def _anchor_config_param(p) -> dict | None:
    """The `billing_cycle_anchor_config` of a create request as given (None without one), its ranges checked."""
    if "billing_cycle_anchor_config" not in p:
        return None
    if "billing_cycle_anchor" in p:
        raise invalid(
            "You may only specify one of these parameters: billing_cycle_anchor, billing_cycle_anchor_config.",
            param="billing_cycle_anchor_config",
        )
    cp = p.sub("billing_cycle_anchor_config", required=True)
    return {
        field: cp.int_between(field, low, high, required=field == "day_of_month")
        for field, low, high in ANCHOR_CONFIG_RANGES
    }


def _anchor_from_config(config: dict, now: int, interval: str, count: int) -> tuple[dict, int, int]:
    """(the config as returned, the first period end, billing_cycle_anchor). Hour, minute and second default
    to those of the creation time (UTC), as Stripe documents; `month` stays null unless given."""
    if interval not in ("month", "year"):
        raise invalid(
            "billing_cycle_anchor_config is only valid with monthly and yearly price intervals.",
            param="billing_cycle_anchor_config",
        )
    months = count * (12 if interval == "year" else 1)
    if config["month"] is not None and months == 1:
        raise invalid(
            "billing_cycle_anchor_config[month] can only be used with prices that bill every several "
            "months or yearly: a monthly price bills every month.",
            param="billing_cycle_anchor_config[month]",
        )
    at = tuple(
        default if config[field] is None else config[field]
        for field, default in zip(("hour", "minute", "second"), time_of_day(now))
    )
    config = {**config, "hour": at[0], "minute": at[1], "second": at[2]}
    first_end, anchor = configured_anchor(now, months, config["day_of_month"], at, config["month"])
    return config, first_end, anchor


def create(ctx):
    p = ctx.params
    customer = require(ctx, p.str("customer", required=True), "customer", param="customer")
    raw_items = p.list("items")
    if not raw_items:
        raise invalid("Missing required param: items.", param="items", code="parameter_missing")
    now = ctx.customer_now(customer)
    start = p.int("backdate_start_date", default=now)
    anchor_config = _anchor_config_param(p)
    anchor = p.int("billing_cycle_anchor", default=start)
    if anchor < start:
        raise invalid(
            "billing_cycle_anchor cannot be before the subscription's start date.", param="billing_cycle_anchor"
        )
    sub_id = new_id("sub")
    prices, items = [], []
    for i, raw in enumerate(raw_items):
        ip = Params(raw if isinstance(raw, dict) else {})
        price = recurring_price(ctx, ip.str("price", required=True), f"items[{i}][price]")
        prices.append(price)
        items.append(
            new_item(
                price, sub_id, created=now, period=(start, 0), quantity=ip.int("quantity"), metadata=ip.raw("metadata")
            )
        )
    first = prices[0]
    interval, count = first["recurring"]["interval"], first["recurring"]["interval_count"]
    for i, pr in enumerate(prices):
        if pr["currency"] != first["currency"]:
            raise invalid(
                f"This `price` has `currency={pr['currency']}`, but other items use "
                f"`currency={first['currency']}`. All items must have pricing in the same currency. "
                "When using multi-currency prices, you can specify `currency` at the top level, to be "
                "used by all items.",
                param=f"items[{i}][price]",
            )
        if (pr["recurring"]["interval"], pr["recurring"]["interval_count"]) != (interval, count):
            raise invalid(INTERVAL_MISMATCH, param=f"items[{i}][price]")
    earliest_end = start
    if anchor_config is not None:
        # computed from the creation time, not from a backdated start (Stripe: no anchoring on a backdated
        # start date); the first period still begins at the start date
        anchor_config, earliest_end, anchor = _anchor_from_config(anchor_config, now, interval, count)
    check_unique_prices(items, set())
    sub = {
        "id": sub_id,
        "object": "subscription",
        "application": None,
        "application_fee_percent": None,
        "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
        "billing_cycle_anchor": anchor,
        "billing_cycle_anchor_config": anchor_config,
        "billing_mode": {"type": "classic", "flexible": None},
        "billing_schedules": [],
        "billing_thresholds": None,
        "cancel_at": None,
        "cancel_at_period_end": False,
        "canceled_at": None,
        "cancellation_details": {"comment": None, "feedback": None, "reason": None},
        "collection_method": p.str(
            "collection_method", default="charge_automatically", choices=("charge_automatically", "send_invoice")
        ),
        "created": now,
        "currency": prices[0]["currency"],
        "customer": customer["id"],
        "customer_account": None,
        "days_until_due": p.int("days_until_due"),
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": p.str("description"),
        "discounts": [],
        "ended_at": None,
        "invoice_settings": {"account_tax_ids": None, "issuer": {"type": "self"}},
        "items": list_object(f"/v1/subscription_items?subscription={sub_id}", items),
        "latest_invoice": None,
        "livemode": False,
        "managed_payments": None,
        "metadata": merge_metadata({}, p.raw("metadata")),
        "next_pending_invoice_item_invoice": None,
        "on_behalf_of": None,
        "pause_collection": None,
        "payment_settings": {
            "payment_method_options": None,
            "payment_method_types": None,
            "save_default_payment_method": "off",
        },
        "pending_invoice_item_interval": None,
        "pending_setup_intent": None,
        "pending_update": None,
        "schedule": None,
        "start_date": start,
        "status": "active",
        "test_clock": customer.get("test_clock"),
        "transfer_data": None,
        "trial_end": None,
        "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
        "trial_start": None,
        "_period_start": start,
        "_interval": interval,
        "_interval_count": count,
    }
    # the first boundary after the start; a configured one no earlier than the occurrence at or after now
    sub["_period_end"] = max(earliest_end, billing_cycle.period_end_after(sub, start))
    for item in items:
        item["current_period_end"] = sub["_period_end"]
    ctx.tx.insert(sub)
    index_items(ctx.tx, items)
    billing_cycle.process_subscription(ctx.tx, sub, now, ctx.settings.grace_period_seconds)
    return 200, sub


def retrieve(ctx):
    bring_up_to_date(ctx)
    return 200, require(ctx, ctx.path["id"], "subscription")


def update(ctx):
    sub = require(ctx, ctx.path["id"], "subscription")
    p = ctx.params
    proration_behavior(ctx)
    if p.list("items"):
        apply_item_changes(ctx, sub, p.list("items"))
    update_fields(sub, p, ("description",))
    if "cancel_at_period_end" in p:
        sub["cancel_at_period_end"] = p.bool("cancel_at_period_end")
        sub["cancel_at"] = sub["_period_end"] if sub["cancel_at_period_end"] else None
    return 200, ctx.tx.save(sub)


def cancel(ctx):
    sub = require(ctx, ctx.path["id"], "subscription")
    if sub["status"] == "canceled":
        raise invalid(f"The subscription {sub['id']} is already canceled.")
    now = ctx.clock_now(sub.get("test_clock"))
    billing_cycle.process_subscription(ctx.tx, sub, now, ctx.settings.grace_period_seconds)
    sub.update(status="canceled", canceled_at=now, ended_at=now)
    return 200, ctx.tx.save(sub)


def list_(ctx):
    bring_up_to_date(ctx)
    p = ctx.params
    filters = str_filters(p, ("customer", "test_clock"))
    status = p.str("status", default=None)
    price = p.str("price")

    def keep(o):
        if status not in (None, "all") and o["status"] != status:
            return False
        if status is None and o["status"] == "canceled":
            return False
        return price is None or any(i["price"]["id"] == price for i in o["items"]["data"])

    return list_page(ctx, "subscription", "/v1/subscriptions", keep=keep, **filters)


def register(r):
    r.add("POST", "/v1/subscriptions", create)
    r.add("GET", "/v1/subscriptions", list_, write=True)
    r.add("GET", "/v1/subscriptions/{id}", retrieve, write=True)
    r.add("POST", "/v1/subscriptions/{id}", update)
    r.add("DELETE", "/v1/subscriptions/{id}", cancel)

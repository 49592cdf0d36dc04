"""Subscription items: the items of a subscription as their own resource, and the item changes of
`POST /v1/subscriptions/{id}` (`items[n][id]` + `price` moves an item, `price` alone adds one,
`id` + `deleted=true` removes one).

The subscription document's embedded `items` list is the one copy of every item; a bare `subscription_item`
row per item (id -> subscription) lets an item be found by its id. The period close bills the items the
subscription has at that moment (billing_cycle.py), so a moved metered item bills its whole period's usage
on the new price. No proration: `proration_behavior` is accepted and validated, nothing more.
"""

from __future__ import annotations

import re

from .. import billing_cycle
from ..errors import StripeError, invalid, missing, missing_param
from ..params import Params, merge_metadata
from ..storage import new_id
from .common import deleted, list_object, paginate_list, require
from .invoices import bring_up_to_date

PRORATION_BEHAVIORS = ("create_prorations", "none", "always_invoice")
ONE_TIME_PRICE = (
    "The price specified is set to `type=one_time` but this field only accepts prices with `type=recurring`."
)
INTERVAL_MISMATCH = (
    "Currency and interval fields must match across all plans on this subscription. Found mismatch in interval field."
)
LAST_ITEM = (
    "A subscription must have at least one active plan. To cancel a subscription, please use the "
    "cancel API endpoint on /v1/subscriptions."
)
_WELL_FORMED = re.compile(r"^si_[A-Za-z0-9]{14}$")


def plan_from_price(price: dict) -> dict:
    rec = price["recurring"] or {}
    return {
        "id": price["id"],
        "object": "plan",
        "active": price["active"],
        "amount": price["unit_amount"],
        "amount_decimal": price["unit_amount_decimal"],
        "billing_scheme": price["billing_scheme"],
        "created": price["created"],
        "currency": price["currency"],
        "interval": rec.get("interval"),
        "interval_count": rec.get("interval_count"),
        "livemode": False,
        "metadata": price["metadata"],
        "meter": rec.get("meter"),
        "nickname": price["nickname"],
        "product": price["product"],
        "tiers_mode": price["tiers_mode"],
        "transform_usage": price["transform_quantity"],
        "trial_period_days": rec.get("trial_period_days"),
        "usage_type": rec.get("usage_type"),
    }


def is_metered(price: dict) -> bool:
    return (price["recurring"] or {}).get("usage_type") == "metered"


def new_item(
    price: dict, sub_id: str, *, created: int, period: tuple[int, int], quantity: int | None, metadata=None
) -> dict:
    return {
        "id": new_id("si", 14),
        "object": "subscription_item",
        "billing_thresholds": None,
        "created": created,
        "current_period_end": period[1],
        "current_period_start": period[0],
        "discounts": [],
        "metadata": merge_metadata({}, metadata),
        "plan": plan_from_price(price),
        "price": price,
        "quantity": None if is_metered(price) else (quantity if quantity is not None else 1),
        "subscription": sub_id,
        "tax_rates": [],
    }


def recurring_price(ctx, price_id: str | None, param: str) -> dict:
    price = require(ctx, price_id, "price", param=param)
    if not price["recurring"]:
        raise invalid(ONE_TIME_PRICE, param=param)
    return price


def index_items(tx, items: list[dict]):
    """The id -> subscription rows that make items retrievable by id."""
    for item in items:
        tx.insert({"id": item["id"], "object": "subscription_item", "subscription": item["subscription"]})


def _unknown_item(item_id: str, param: str | None) -> StripeError:
    """Stripe answers a well-formed unknown id with `No such subscription_item`, a malformed one with its own
    `Invalid subscription_item id` (no code)."""
    if _WELL_FORMED.match(item_id or ""):
        return StripeError(404, f"No such subscription_item: '{item_id}'", code="resource_missing", param=param)
    return StripeError(404, f"Invalid subscription_item id: {item_id}", param=param)


def _duplicate_price(price_id: str, added: dict | None, existing: dict | None) -> StripeError:
    if added is not None and existing is not None:
        return invalid(
            f"A new item with Price {price_id} can't be added to this Subscription because an existing "
            f"Subscription Item {existing['id']} is already using that Price. If you want to update the existing "
            "item (e.g., to adjust the quantity), pass the existing Subscription Item's `id` in your update "
            "request: https://stripe.com/docs/api/subscriptions/update#update_subscription-items-id",
            param="plan",
        )
    return invalid(f"Cannot add multiple subscription items with the same price: {price_id}", param="plan")


def check_unique_prices(items: list[dict], existing_ids: set[str]):
    """Two items of one subscription may not share a price."""
    first: dict[str, dict] = {}
    for item in items:
        pid = item["price"]["id"]
        other = first.setdefault(pid, item)
        if other is item:
            continue
        pair = (other, item)
        added = next((i for i in pair if i["id"] not in existing_ids), None)
        kept = next((i for i in pair if i["id"] in existing_ids), None)
        raise _duplicate_price(pid, added, kept)


def apply_item_changes(ctx, sub: dict, changes: list, param=lambda n, key: f"items[{n}][{key}]") -> list[dict]:
    """Apply Stripe's item changes to `sub` (saved); returns the items added or changed, in request order.

    Each change: `id` + `price`/`quantity`/`metadata` updates that item, `id` + `deleted` removes it,
    no `id` adds an item on `price`. Prices must be recurring and match the subscription's currency and
    interval; no two items may share a price; at least one item must remain.
    """
    if sub["status"] == "canceled":
        raise invalid("A canceled subscription can only update its cancellation_details and metadata.")
    now = ctx.clock_now(sub.get("test_clock"))
    # periods that ended before the change are billed on the items they had
    billing_cycle.process_subscription(ctx.tx, sub, now, ctx.settings.grace_period_seconds)
    items = [dict(i) for i in sub["items"]["data"]]
    by_id = {i["id"]: i for i in items}
    existing_ids = set(by_id)
    touched: list[dict] = []
    removed: list[str] = []
    for n, raw in enumerate(changes):
        ip = Params(raw if isinstance(raw, dict) else {})
        item_id = ip.str("id")
        price = None
        if ip.str("price"):
            price = recurring_price(ctx, ip.str("price"), param(n, "price"))
            if price["currency"] != sub["currency"]:
                raise invalid(
                    f"The price specified only supports `{price['currency']}`. This doesn't match the "
                    f"expected currency: `{sub['currency']}`.",
                    param=param(n, "price"),
                )
            rec = price["recurring"]
            if (rec["interval"], rec["interval_count"]) != billing_cycle.sub_interval(sub):
                raise invalid(INTERVAL_MISMATCH, param=param(n, "price"))
        quantity = ip.int("quantity")
        if item_id:
            item = by_id.get(item_id)
            if item is None:
                raise _unknown_item(item_id, param(n, "id"))
            if ip.bool("deleted", default=False):
                items.remove(item)
                del by_id[item_id]
                removed.append(item_id)
                continue
            if price is not None and price["id"] != item["price"]["id"]:
                item["price"], item["plan"] = price, plan_from_price(price)
                if is_metered(price):
                    item["quantity"] = None
                elif item["quantity"] is None:
                    item["quantity"] = 1
            if quantity is not None and not is_metered(item["price"]):
                item["quantity"] = quantity
            item["metadata"] = merge_metadata(item.get("metadata") or {}, ip.raw("metadata"))
            touched.append(item)
        else:
            if ip.bool("deleted", default=False):
                raise missing_param(param(n, "id"))
            if price is None:
                raise invalid("You must pass one of plan, price, or price_data.", param=param(n, "price"))
            item = new_item(
                price,
                sub["id"],
                created=now,
                period=(now, sub["_period_end"]),
                quantity=quantity,
                metadata=ip.raw("metadata"),
            )
            items.append(item)
            by_id[item["id"]] = item
            touched.append(item)
    if not items:
        raise invalid(LAST_ITEM, param="items")
    check_unique_prices(items, existing_ids)
    index_items(ctx.tx, [i for i in items if i["id"] not in existing_ids])
    for item_id in removed:
        ctx.tx.delete(item_id)
    sub["items"] = list_object(f"/v1/subscription_items?subscription={sub['id']}", items)
    ctx.tx.save(sub)
    return touched


def proration_behavior(ctx):
    ctx.params.str("proration_behavior", choices=PRORATION_BEHAVIORS)


def find_item(ctx, item_id: str) -> tuple[dict, dict]:
    """(subscription, item) of a live item, else Stripe's unknown-item error."""
    row = ctx.tx.get(item_id, "subscription_item")
    subs = [ctx.tx.get(row["subscription"], "subscription")] if row else []
    if not row and not ctx.tx.is_deleted(item_id):  # state files from before items were indexed
        subs = ctx.tx.find("subscription", order="asc")
    for sub in subs:
        for item in (sub or {}).get("items", {}).get("data", []):
            if item["id"] == item_id:
                return sub, item
    raise _unknown_item(item_id, None)


# -- endpoints -----------------------------------------------------------------------------------------
def list_(ctx):
    bring_up_to_date(ctx)
    p = ctx.params
    sub_id = p.str("subscription")
    if not sub_id:
        raise missing_param("subscription")
    sub = require(ctx, sub_id, "subscription", param="subscription")
    pp = {
        "limit": p.int("limit", default=10),
        "starting_after": p.str("starting_after"),
        "ending_before": p.str("ending_before"),
    }
    if not 1 <= pp["limit"] <= 100:
        raise invalid("Invalid limit: must be between 1 and 100", param="limit")
    items, has_more = paginate_list(sub["items"]["data"], **pp)  # oldest first, as Stripe lists items
    return 200, list_object(f"/v1/subscription_items?subscription={sub_id}", items, has_more)


def retrieve(ctx):
    bring_up_to_date(ctx)
    return 200, find_item(ctx, ctx.path["id"])[1]


def create(ctx):
    p = ctx.params
    sub_id = p.str("subscription")
    if not sub_id:
        raise missing_param("subscription")
    sub = ctx.tx.get(sub_id, "subscription")
    if sub is None or sub["status"] == "canceled":
        raise missing("subscription", sub_id, param="subscription")
    if not p.str("price"):
        raise missing_param("price")
    proration_behavior(ctx)
    change = {k: p.raw(k) for k in ("price", "quantity", "metadata") if k in p}
    return 200, apply_item_changes(ctx, sub, [change], param=lambda n, key: key)[0]


def update(ctx):
    p = ctx.params
    sub, item = find_item(ctx, ctx.path["id"])
    proration_behavior(ctx)
    change = {"id": item["id"], **{k: p.raw(k) for k in ("price", "quantity", "metadata") if k in p}}
    return 200, apply_item_changes(ctx, sub, [change], param=lambda n, key: key)[0]


def delete(ctx):
    sub, item = find_item(ctx, ctx.path["id"])
    proration_behavior(ctx)
    apply_item_changes(ctx, sub, [{"id": item["id"], "deleted": "true"}], param=lambda n, key: key)
    return 200, deleted(item["id"], "subscription_item")


def register(r):
    r.add("GET", "/v1/subscription_items", list_, write=True)
    r.add("POST", "/v1/subscription_items", create)
    r.add("GET", "/v1/subscription_items/{id}", retrieve, write=True)
    r.add("POST", "/v1/subscription_items/{id}", update)
    r.add("DELETE", "/v1/subscription_items/{id}", delete)

"""Prices: per_unit and tiered (graduated/volume), transform_quantity, lookup keys, metered recurring prices.

`tiers` is stored on the price but, as in Stripe, only returned when expanded (`expand[]=tiers`).
"""

from __future__ import annotations

from decimal import Decimal

from ..errors import invalid
from ..params import Params, merge_metadata
from ..storage import new_id
from .common import list_page, require, update_fields
from .products import new_product


def _amount(p: Params, int_key: str, dec_key: str, param_prefix: str) -> Decimal | None:
    if int_key in p and dec_key in p:
        raise invalid(
            f"You may only specify one of these parameters: {int_key}, {dec_key}.", param=param_prefix + dec_key
        )
    if dec_key in p:
        return p.decimal(dec_key)
    if int_key in p:
        return Decimal(p.int(int_key))
    return None


def _dec_str(d: Decimal | None) -> str | None:
    if d is None:
        return None
    s = format(d.normalize(), "f")
    return s


def _int_or_none(d: Decimal | None) -> int | None:
    return int(d) if d is not None and d == d.to_integral_value() else None


def _tiers(p: Params) -> list[dict]:
    raw = p.list("tiers")
    if not raw:
        raise invalid("Tiered prices need `tiers`.", param="tiers")
    tiers, last = [], Decimal(0)
    for i, t in enumerate(raw):
        tp = Params(t if isinstance(t, dict) else {})
        up = tp.raw("up_to")
        if up == "inf" or up is None:
            if i != len(raw) - 1:
                raise invalid("Only the last tier may have `up_to=inf`.", param=f"tiers[{i}][up_to]")
            up_to = None
        else:
            up_to = tp.int("up_to")
            if up_to <= last:
                raise invalid("Tiers must be in ascending order of `up_to`.", param=f"tiers[{i}][up_to]")
            last = Decimal(up_to)
        unit = _amount(tp, "unit_amount", "unit_amount_decimal", f"tiers[{i}][")
        flat = _amount(tp, "flat_amount", "flat_amount_decimal", f"tiers[{i}][")
        if unit is None and flat is None:
            raise invalid("Each tier needs unit_amount or flat_amount.", param=f"tiers[{i}]")
        tiers.append(
            {
                "flat_amount": _int_or_none(flat),
                "flat_amount_decimal": _dec_str(flat),
                "unit_amount": _int_or_none(unit),
                "unit_amount_decimal": _dec_str(unit),
                "up_to": up_to,
            }
        )
    if tiers[-1]["up_to"] is not None:
        raise invalid("The last tier must have `up_to=inf`.", param=f"tiers[{len(raw) - 1}][up_to]")
    return tiers


def _claim_lookup_key(ctx, key: str | None, transfer: bool, price_id: str):
    if not key:
        return
    for other in ctx.tx.find("price", lookup_key=key):
        if other["id"] == price_id:
            continue
        if not transfer:
            raise invalid(
                f"A price (`{other['id']}`) already uses that lookup key. Pass "
                "`transfer_lookup_key=true` to move it to this price.",
                param="lookup_key",
            )
        other["lookup_key"] = None
        ctx.tx.save(other)


def _recurring(ctx, p: Params) -> dict | None:
    rec = p.dict("recurring")
    if rec is None:
        return None
    rp = Params(rec)
    usage_type = rp.str("usage_type", default="licensed", choices=("licensed", "metered"))
    meter = rp.str("meter")
    if usage_type == "metered" and not meter:
        raise invalid("Metered prices must reference a meter: pass `recurring[meter]`.", param="recurring[meter]")
    if meter:
        require(ctx, meter, "billing.meter", "billing meter", param="recurring[meter]")
    return {
        "interval": rp.str("interval", required=True, choices=("day", "week", "month", "year")),
        "interval_count": rp.int("interval_count", default=1),
        "meter": meter,
        "trial_period_days": rp.int("trial_period_days"),
        "usage_type": usage_type,
    }


def create(ctx):
    p = ctx.params
    if "product_data" in p:
        product = ctx.tx.insert(new_product(ctx, p.sub("product_data")))
    else:
        product = require(ctx, p.str("product", required=True), "product", param="product")
    scheme = p.str("billing_scheme", default="per_unit", choices=("per_unit", "tiered"))
    unit = _amount(p, "unit_amount", "unit_amount_decimal", "")
    tiers, tiers_mode = None, None
    if scheme == "tiered":
        tiers_mode = p.str("tiers_mode", required=True, choices=("graduated", "volume"))
        tiers = _tiers(p)
        if "transform_quantity" in p:
            raise invalid("transform_quantity cannot be used with tiered prices.", param="transform_quantity")
    elif unit is None and "custom_unit_amount" not in p:
        raise invalid("Missing required param: unit_amount.", param="unit_amount", code="parameter_missing")
    transform = None
    if "transform_quantity" in p:
        tq = p.sub("transform_quantity")
        divide_by = tq.int("divide_by", required=True)
        if divide_by < 1:
            raise invalid(
                "transform_quantity[divide_by] must be a positive integer.", param="transform_quantity[divide_by]"
            )
        transform = {"divide_by": divide_by, "round": tq.str("round", required=True, choices=("up", "down"))}
    price_id = new_id("price")
    lookup_key = p.str("lookup_key")
    _claim_lookup_key(ctx, lookup_key, bool(p.bool("transfer_lookup_key")), price_id)
    recurring = _recurring(ctx, p)
    obj = {
        "id": price_id,
        "object": "price",
        "active": p.bool("active", default=True),
        "billing_scheme": scheme,
        "created": ctx.now(),
        "currency": (p.str("currency", required=True)).lower(),
        "custom_unit_amount": None,
        "livemode": False,
        "lookup_key": lookup_key,
        "metadata": merge_metadata({}, p.raw("metadata")),
        "nickname": p.str("nickname"),
        "product": product["id"],
        "recurring": recurring,
        "tax_behavior": p.str("tax_behavior", default="unspecified"),
        "tiers_mode": tiers_mode,
        "transform_quantity": transform,
        "type": "recurring" if recurring else "one_time",
        "unit_amount": _int_or_none(unit) if scheme == "per_unit" else None,
        "unit_amount_decimal": _dec_str(unit) if scheme == "per_unit" else None,
        "_tiers": tiers,
    }
    return 200, render(ctx.tx.insert(obj), ctx.params.expand())


def render(price: dict, expand=()) -> dict:
    if "tiers" in expand or "data.tiers" in expand:
        return {**price, "tiers": price.get("_tiers")}
    return price


def retrieve(ctx):
    return 200, render(require(ctx, ctx.path["id"], "price"), ctx.params.expand())


def update(ctx):
    obj = require(ctx, ctx.path["id"], "price")
    p = ctx.params
    if "lookup_key" in p:
        key = p.str("lookup_key")
        _claim_lookup_key(ctx, key, bool(p.bool("transfer_lookup_key")), obj["id"])
        obj["lookup_key"] = key
    update_fields(obj, p, ("nickname", "tax_behavior"), ("active",))
    return 200, render(ctx.tx.save(obj), p.expand())


def list_(ctx):
    p = ctx.params
    filters = {}
    lookup_keys = [str(k) for k in p.list("lookup_keys")]
    if lookup_keys:
        filters["lookup_key"] = lookup_keys
    if "product" in p:
        filters["product"] = p.str("product")
    active, ptype, currency = p.bool("active"), p.str("type"), p.str("currency")
    rec = p.sub("recurring") if "recurring" in p else None

    def keep(o):
        return (
            (active is None or o["active"] == active)
            and (ptype is None or o["type"] == ptype)
            and (currency is None or o["currency"] == currency.lower())
            and (
                rec is None
                or (o["recurring"] or {}).get("usage_type")
                == rec.str("usage_type", default=(o["recurring"] or {}).get("usage_type"))
            )
        )

    expand = p.expand()
    return list_page(ctx, "price", "/v1/prices", render=lambda o: render(o, expand), keep=keep, **filters)


def register(r):
    r.add("POST", "/v1/prices", create)
    r.add("GET", "/v1/prices", list_)
    r.add("GET", "/v1/prices/{id}", retrieve)
    r.add("POST", "/v1/prices/{id}", update)

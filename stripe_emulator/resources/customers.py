"""Customers: create, retrieve, update, delete, list (email, test_clock)."""

from __future__ import annotations

import secrets

from ..errors import missing
from ..params import merge_metadata
from ..storage import new_id
from .common import deleted, list_page, require, update_fields

_ADDRESS_FIELDS = ("city", "country", "line1", "line2", "postal_code", "state")


def _address(v):
    if not isinstance(v, dict):
        return None
    return {k: v.get(k) or None for k in _ADDRESS_FIELDS}


def create(ctx):
    p = ctx.params
    clock = p.str("test_clock")
    if clock:
        require(ctx, clock, "test_helpers.test_clock", "test clock", param="test_clock")
    obj = {
        "id": new_id("cus", 14),
        "object": "customer",
        "address": _address(p.raw("address")),
        "balance": p.int("balance", default=0),
        "created": ctx.clock_now(clock),
        "currency": None,
        "default_source": None,
        "delinquent": False,
        "description": p.str("description"),
        "discount": None,
        "email": p.str("email"),
        "invoice_prefix": p.str("invoice_prefix") or secrets.token_hex(4).upper(),
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": None,
            "footer": None,
            "rendering_options": None,
        },
        "livemode": False,
        "metadata": merge_metadata({}, p.raw("metadata")),
        "name": p.str("name"),
        "next_invoice_sequence": 1,
        "phone": p.str("phone"),
        "preferred_locales": p.list("preferred_locales"),
        "shipping": None,
        "tax_exempt": p.str("tax_exempt") or "none",
        "test_clock": clock,
    }
    return 200, ctx.tx.insert(obj)


def _get(ctx):
    obj_id = ctx.path["id"]
    obj = ctx.tx.get(obj_id, "customer", include_deleted=True)
    if obj is None:
        raise missing("customer", obj_id)
    return obj


def retrieve(ctx):
    obj = _get(ctx)
    if ctx.tx.is_deleted(obj["id"]):
        return 200, deleted(obj["id"], "customer")
    return 200, obj


def update(ctx):
    obj = require(ctx, ctx.path["id"], "customer")
    p = ctx.params
    update_fields(obj, p, ("email", "name", "description", "phone", "invoice_prefix", "tax_exempt"))
    if "address" in p:
        obj["address"] = _address(p.raw("address"))
    return 200, ctx.tx.save(obj)


def delete(ctx):
    obj = require(ctx, ctx.path["id"], "customer")
    ctx.tx.delete(obj["id"])
    return 200, deleted(obj["id"], "customer")


def list_(ctx):
    p = ctx.params
    filters = {}
    if "test_clock" in p:
        filters["test_clock"] = p.str("test_clock")
    email = p.str("email")
    keep = (lambda o: o.get("email") == email) if email else None
    return list_page(ctx, "customer", "/v1/customers", keep=keep, **filters)


def register(r):
    r.add("POST", "/v1/customers", create)
    r.add("GET", "/v1/customers", list_)
    r.add("GET", "/v1/customers/{id}", retrieve)
    r.add("POST", "/v1/customers/{id}", update)
    r.add("DELETE", "/v1/customers/{id}", delete)

"""Products: create, retrieve, update, delete, list (active)."""

from __future__ import annotations

from ..params import merge_metadata
from ..storage import new_id
from .common import deleted, list_page, require, update_fields


def new_product(ctx, p, product_id: str | None = None) -> dict:
    return {
        "id": product_id or new_id("prod", 14),
        "object": "product",
        "active": p.bool("active", default=True),
        "created": ctx.now(),
        "default_price": None,
        "description": p.str("description"),
        "images": p.list("images"),
        "livemode": False,
        "marketing_features": [],
        "metadata": merge_metadata({}, p.raw("metadata")),
        "name": p.str("name", required=True),
        "package_dimensions": None,
        "shippable": None,
        "statement_descriptor": p.str("statement_descriptor"),
        "tax_code": p.str("tax_code"),
        "type": "service",
        "unit_label": p.str("unit_label"),
        "updated": ctx.now(),
        "url": p.str("url"),
    }


def create(ctx):
    return 200, ctx.tx.insert(new_product(ctx, ctx.params, ctx.params.str("id")))


def retrieve(ctx):
    return 200, require(ctx, ctx.path["id"], "product")


def update(ctx):
    obj = require(ctx, ctx.path["id"], "product")
    p = ctx.params
    update_fields(
        obj, p, ("name", "description", "unit_label", "statement_descriptor", "url", "default_price"), ("active",)
    )
    obj["updated"] = ctx.now()
    return 200, ctx.tx.save(obj)


def delete(ctx):
    obj = require(ctx, ctx.path["id"], "product")
    ctx.tx.delete(obj["id"])
    return 200, deleted(obj["id"], "product")


def list_(ctx):
    active = ctx.params.bool("active")
    keep = (lambda o: o["active"] == active) if active is not None else None
    return list_page(ctx, "product", "/v1/products", keep=keep)


def register(r):
    r.add("POST", "/v1/products", create)
    r.add("GET", "/v1/products", list_)
    r.add("GET", "/v1/products/{id}", retrieve)
    r.add("POST", "/v1/products/{id}", update)
    r.add("DELETE", "/v1/products/{id}", delete)

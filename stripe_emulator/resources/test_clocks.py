"""Test clocks: create, retrieve, list, advance (processed synchronously: status `ready` on return), delete."""

from __future__ import annotations

from .. import billing_cycle
from ..errors import invalid
from ..storage import new_id
from . import alerts
from .common import deleted, list_page, require

KIND = "test_helpers.test_clock"
DELETES_AFTER = 30 * 86400


def create(ctx):
    p = ctx.params
    obj = {
        "id": new_id("clock"),
        "object": KIND,
        "created": ctx.now(),
        "deletes_after": ctx.now() + DELETES_AFTER,
        "frozen_time": p.int("frozen_time", required=True),
        "livemode": False,
        "name": p.str("name"),
        "status": "ready",
        "status_details": {},
    }
    return 200, ctx.tx.insert(obj)


def retrieve(ctx):
    return 200, require(ctx, ctx.path["id"], KIND, "test clock")


def list_(ctx):
    return list_page(ctx, KIND, "/v1/test_helpers/test_clocks")


def advance(ctx):
    clock = require(ctx, ctx.path["id"], KIND, "test clock")
    to = ctx.params.int("frozen_time", required=True)
    if to <= clock["frozen_time"]:
        raise invalid(
            "The test clock can only move forward: frozen_time must be after the current "
            f"frozen_time ({clock['frozen_time']}).",
            param="frozen_time",
        )
    clock["frozen_time"] = to
    clock["status"] = "ready"
    ctx.tx.save(clock)
    billing_cycle.process_clock(ctx.tx, clock["id"], to, ctx.settings.grace_period_seconds)
    # a new period may already hold usage (events stamped up to 5 minutes ahead)
    alerts.evaluate_customers(ctx, [c["id"] for c in ctx.tx.find("customer", test_clock=clock["id"])])
    return 200, clock


def delete(ctx):
    clock = require(ctx, ctx.path["id"], KIND, "test clock")
    for type in ("subscription", "customer"):
        for obj in ctx.tx.find(type, test_clock=clock["id"]):
            ctx.tx.delete(obj["id"])
    ctx.tx.delete(clock["id"])
    return 200, deleted(clock["id"], KIND)


def register(r):
    r.add("POST", "/v1/test_helpers/test_clocks", create)
    r.add("GET", "/v1/test_helpers/test_clocks", list_)
    r.add("GET", "/v1/test_helpers/test_clocks/{id}", retrieve)
    r.add("POST", "/v1/test_helpers/test_clocks/{id}/advance", advance)
    r.add("DELETE", "/v1/test_helpers/test_clocks/{id}", delete)

"""v1 events (`/v1/events`): what the emulator records for its integrations to read back, newest first.

Only `billing.alert.triggered` is recorded (resources/alerts.py). List filters: `type` (a trailing `*` matches
a prefix, `billing.alert.*`), `types[]`, `created` (exact or gt/gte/lt/lte), with Stripe's pagination.
"""

from __future__ import annotations

from ..storage import new_id
from .common import created_filter, list_page, require

KIND = "event"
API_VERSION = "2025-03-31.basil"


def record_event(ctx, type: str, obj: dict, created: int) -> dict:
    """Store an event whose `data.object` is `obj`; `created` on the clock of the object's customer."""
    event = {
        "id": new_id("evt"),
        "object": KIND,
        "api_version": API_VERSION,
        "created": created,
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 0,
        "request": {"id": ctx.request_id or None, "idempotency_key": ctx.idempotency_key},
        "type": type,
    }
    return ctx.tx.insert(event)


def _type_matches(pattern: str, type: str) -> bool:
    return type.startswith(pattern[:-1]) if pattern.endswith("*") else type == pattern


def list_(ctx):
    p = ctx.params
    wanted = [t for t in [p.str("type"), *p.list("types")] if t]
    created = created_filter(p)

    def keep(event: dict) -> bool:
        return (not wanted or any(_type_matches(t, event["type"]) for t in wanted)) and (
            created is None or created(event)
        )

    return list_page(ctx, KIND, "/v1/events", keep=keep)


def retrieve(ctx):
    return 200, require(ctx, ctx.path["id"], KIND, "event")


def register(r):
    r.add("GET", "/v1/events", list_)
    r.add("GET", "/v1/events/{id}", retrieve)

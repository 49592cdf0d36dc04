"""Billing meters: create, retrieve, list (status), update, deactivate, reactivate; event summaries."""

from __future__ import annotations

from ..aggregation import WINDOW_SECONDS, aggregate_rows, json_number
from ..errors import invalid
from ..storage import new_id
from .common import list_object, list_page, page_params, paginate_list, require


def create(ctx):
    p = ctx.params
    event_name = p.str("event_name", required=True)
    if ctx.tx.find("billing.meter", event_name=event_name, status="active"):
        raise invalid(f"An active meter with event_name '{event_name}' already exists.", param="event_name")
    agg = p.sub("default_aggregation", required=True)
    cm = p.sub("customer_mapping")
    vs = p.sub("value_settings")
    window = p.str("event_time_window", choices=("hour", "day"))
    now = ctx.now()
    obj = {
        "id": new_id("mtr_test", 32),
        "object": "billing.meter",
        "created": now,
        "customer_mapping": {
            "event_payload_key": cm.str("event_payload_key", default="stripe_customer_id"),
            "type": cm.str("type", default="by_id", choices=("by_id",)),
        },
        "default_aggregation": {"formula": agg.str("formula", required=True, choices=("sum", "count", "last"))},
        "display_name": p.str("display_name", required=True),
        "event_name": event_name,
        "event_time_window": window,
        "livemode": False,
        "status": "active",
        "status_transitions": {"deactivated_at": None},
        "updated": now,
        "value_settings": {"event_payload_key": vs.str("event_payload_key", default="value")},
    }
    return 200, ctx.tx.insert(obj)


def retrieve(ctx):
    return 200, require(ctx, ctx.path["id"], "billing.meter", "billing meter")


def update(ctx):
    obj = require(ctx, ctx.path["id"], "billing.meter", "billing meter")
    if "display_name" in ctx.params:
        obj["display_name"] = ctx.params.str("display_name", required=True)
    obj["updated"] = ctx.now()
    return 200, ctx.tx.save(obj)


def _set_status(ctx, status: str):
    obj = require(ctx, ctx.path["id"], "billing.meter", "billing meter")
    if status == "active" and obj["status"] != "active":
        if ctx.tx.find("billing.meter", event_name=obj["event_name"], status="active"):
            raise invalid(f"Another active meter uses event_name '{obj['event_name']}'.")
    obj["status"] = status
    obj["status_transitions"]["deactivated_at"] = ctx.now() if status == "inactive" else None
    obj["updated"] = ctx.now()
    return 200, ctx.tx.save(obj)


def deactivate(ctx):
    return _set_status(ctx, "inactive")


def reactivate(ctx):
    return _set_status(ctx, "active")


def list_(ctx):
    status = ctx.params.str("status", choices=("active", "inactive"))
    filters = {"status": status} if status else {}
    return list_page(ctx, "billing.meter", "/v1/billing/meters", **filters)


def event_summaries(ctx):
    meter = require(ctx, ctx.path["id"], "billing.meter", "billing meter")
    p = ctx.params
    customer = p.str("customer", required=True)
    require(ctx, customer, "customer", param="customer")
    start, end = p.int("start_time", required=True), p.int("end_time", required=True)
    window = p.str("value_grouping_window", choices=("hour", "day"))
    for name, t in (("start_time", start), ("end_time", end)):
        if t % 60:
            raise invalid(f"{name} must be aligned with minute boundaries.", param=name)
        if window and t % WINDOW_SECONDS[window]:
            raise invalid(f"{name} must be aligned with the value_grouping_window ({window}).", param=name)
    if end <= start:
        raise invalid("end_time must be after start_time.", param="end_time")
    rows = ctx.tx.conn.execute(
        "SELECT value, ts, seq FROM meter_events WHERE meter = ? AND customer = ? AND ts >= ? AND ts < ? "
        "AND canceled_at IS NULL",
        (meter["id"], customer, start, end),
    ).fetchall()
    step = WINDOW_SECONDS[window] if window else end - start
    grouped: dict = {}
    for r in rows:
        grouped.setdefault((r[1] - start) // step, []).append(r)
    summaries = []
    for i in reversed(range((end - start + step - 1) // step)):  # newest first, as Stripe lists them
        s, e = start + i * step, min(start + (i + 1) * step, end)
        value = aggregate_rows(meter, grouped.get(i, []))
        summaries.append(
            {
                "id": f"mtrusg_{meter['id']}_{customer}_{s}_{e}",
                "object": "billing.meter_event_summary",
                "aggregated_value": json_number(value),
                "end_time": e,
                "livemode": False,
                "meter": meter["id"],
                "start_time": s,
            }
        )
    items, has_more = paginate_list(summaries, **page_params(ctx))
    return 200, list_object(f"/v1/billing/meters/{meter['id']}/event_summaries", items, has_more)


def register(r):
    r.add("POST", "/v1/billing/meters", create)
    r.add("GET", "/v1/billing/meters", list_)
    r.add("GET", "/v1/billing/meters/{id}", retrieve)
    r.add("POST", "/v1/billing/meters/{id}", update)
    r.add("POST", "/v1/billing/meters/{id}/deactivate", deactivate)
    r.add("POST", "/v1/billing/meters/{id}/reactivate", reactivate)
    r.add("GET", "/v1/billing/meters/{id}/event_summaries", event_summaries)

"""v2 core events: how asynchronous meter event errors (from the v2 stream) are reported, as Stripe does
with `v1.billing.meter.error_report_triggered` and `v1.billing.meter.no_meter_found`."""

from __future__ import annotations

from ..errors import invalid
from ..storage import new_id
from ..timeutil import iso
from .common import paginate_list, require

KIND = "v2.core.event"
SAMPLES = 5


def publish_error_reports(ctx):
    """Group not-yet-reported stream errors into one event per meter (or per unknown event name)."""
    rows = ctx.tx.conn.execute(
        "SELECT seq, meter, event_name, identifier, code, message, created FROM meter_event_errors "
        "WHERE reported = 0 ORDER BY seq"
    ).fetchall()
    if not rows:
        return
    groups: dict = {}
    for r in rows:
        groups.setdefault(r[1] or ("no_meter", r[2]), []).append(r)
    for key, errs in groups.items():
        by_code: dict = {}
        for e in errs:
            by_code.setdefault(e[4], []).append(e)
        data = {
            "developer_message_summary": f"There {'is' if len(errs) == 1 else 'are'} {len(errs)} invalid "
            f"event{'' if len(errs) == 1 else 's'}",
            "reason": {
                "error_count": len(errs),
                "error_types": [
                    {
                        "code": code,
                        "error_count": len(es),
                        "sample_errors": [
                            {"error_message": e[5], "request": {"identifier": e[3]}} for e in es[:SAMPLES]
                        ],
                    }
                    for code, es in by_code.items()
                ],
            },
            "validation_start": iso(errs[0][6]),
            "validation_end": iso(errs[-1][6] + 1),
        }
        is_meter = isinstance(key, str)
        ctx.tx.insert(
            {
                "id": new_id("evt_test", 40),
                "object": KIND,
                "context": None,
                "created": iso(ctx.wall),
                "data": data,
                "livemode": False,
                "reason": None,
                "related_object": {"id": key, "type": "billing.meter", "url": f"/v1/billing/meters/{key}"}
                if is_meter
                else None,
                "type": "v1.billing.meter.error_report_triggered" if is_meter else "v1.billing.meter.no_meter_found",
            }
        )
    ctx.tx.conn.execute("UPDATE meter_event_errors SET reported = 1 WHERE seq <= ?", (rows[-1][0],))


def list_(ctx):
    publish_error_reports(ctx)
    p = ctx.params
    object_id = p.str("object_id")
    types = set(p.list("types"))
    limit = p.int("limit", default=20)
    if not 1 <= limit <= 100:
        raise invalid("limit must be between 1 and 100", param="limit")
    events = [
        e
        for e in ctx.tx.find(KIND)
        if (object_id is None or (e["related_object"] or {}).get("id") == object_id)
        and (not types or e["type"] in types)
    ]
    items, has_more = paginate_list(events, limit, starting_after=p.str("page"))
    next_url = f"/v2/core/events?limit={limit}&page={items[-1]['id']}" if has_more else None
    return 200, {"data": items, "next_page_url": next_url, "previous_page_url": None}


def retrieve(ctx):
    publish_error_reports(ctx)
    return 200, require(ctx, ctx.path["id"], KIND, "event")


def register(r):
    r.add("GET", "/v2/core/events", list_, write=True)
    r.add("GET", "/v2/core/events/{id}", retrieve, write=True)

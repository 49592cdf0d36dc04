"""Billing alerts (`usage_threshold`, `recurrence: one_time`): create, retrieve, list, activate, deactivate,
archive; and their evaluation, which records a `billing.alert.triggered` event (see v1_events.py).

As Stripe documents: an alert triggers once per customer, the first time the customer's usage on the meter
reaches `gte`, and never again for that customer whatever the usage later ("one-time per-customer usage
alert"); only usage reported after the alert was created counts; only `active` alerts trigger. The usage is
the meter's aggregate (its formula, as invoices bill it) over the customer's current subscription period.
"""

from __future__ import annotations

from ..aggregation import aggregate, json_number
from ..billing_cycle import period_end_after
from ..errors import StripeError, invalid, missing_param
from ..params import Params
from ..storage import new_id
from .common import list_object, page_params, paginate_list, require
from .v1_events import record_event

KIND = "billing.alert"
TITLE_MAX = 256
MAX_PER_METER_AND_CUSTOMER = 25  # Stripe's limit, counted over alerts that are not archived
GTE_MAX = 2**63 - 1


def _param_missing(kind: str, obj_id: str, param: str) -> StripeError:
    """An object named by a parameter that does not exist: a 400 naming the parameter, as Stripe answers."""
    return StripeError(400, f"No such {kind}: '{obj_id}'", code="resource_missing", param=param)


def _filters(ctx, ut: Params) -> list[dict] | None:
    raw = ut.list("filters")
    if not raw:
        return None
    if len(raw) > 1:
        raise invalid("You can only specify up to one filter at this time.", param=ut.name("filters"))
    fp = Params(raw[0] if isinstance(raw[0], dict) else {}, prefix=ut.name("filters") + "[0]")
    fp.str("type", required=True, choices=("customer",))
    customer_id = fp.str("customer", required=True)
    if ctx.tx.get(customer_id, "customer") is None:
        raise _param_missing("customer", customer_id, fp.name("customer"))
    return [{"customer": customer_id, "type": "customer"}]


def create(ctx):
    p = ctx.params
    title = p.str("title", required=True)
    if len(title) > TITLE_MAX:
        raise invalid(f"title must be at most {TITLE_MAX} characters.", param="title")
    p.str("alert_type", required=True, choices=("usage_threshold",))
    ut = p.sub("usage_threshold")
    if not ut.data:
        raise missing_param("usage_threshold")
    gte = ut.int_between("gte", 1, GTE_MAX, required=True)
    meter_id = ut.str("meter", required=True)
    meter = ctx.tx.get(meter_id, "billing.meter")
    if meter is None:
        raise _param_missing("billing.meter", meter_id, ut.name("meter"))
    if meter["status"] != "active":
        raise invalid(f"The meter {meter_id} is inactive: an alert needs an active meter.", param=ut.name("meter"))
    ut.str("recurrence", required=True, choices=("one_time",))
    filters = _filters(ctx, ut)
    customer = filters[0]["customer"] if filters else None
    same_scope = [a for a in _alerts(ctx, archived=False) if _scope(a) == (meter_id, customer)]
    if len(same_scope) >= MAX_PER_METER_AND_CUSTOMER:
        raise invalid(
            f"You can create at most {MAX_PER_METER_AND_CUSTOMER} alerts for one meter and customer.",
            param=ut.name("meter"),
        )
    last_event = ctx.tx.conn.execute("SELECT coalesce(max(seq), 0) FROM meter_events").fetchone()[0]
    alert = {
        "id": new_id("alrt"),
        "object": KIND,
        "alert_type": "usage_threshold",
        "livemode": False,
        "status": "active",
        "title": title,
        "usage_threshold": {"filters": filters, "gte": gte, "meter": meter_id, "recurrence": "one_time"},
        "_after_seq": last_event,  # only usage reported after creation counts
        "_triggered": {},  # customer -> event id: one_time, once per customer
    }
    return 200, ctx.tx.insert(alert)


def _alerts(ctx, archived: bool) -> list[dict]:
    found = ctx.tx.find(KIND)
    return found if archived else [a for a in found if a["status"] != "archived"]


def _scope(alert: dict) -> tuple[str, str | None]:
    ut = alert["usage_threshold"]
    filters = ut.get("filters") or []
    return ut["meter"], filters[0]["customer"] if filters else None


def retrieve(ctx):
    return 200, require(ctx, ctx.path["id"], KIND, "billing alert")


def list_(ctx):
    p = ctx.params
    alert_type = p.str("alert_type", choices=("usage_threshold",))
    meter = p.str("meter")
    alerts = [
        a
        for a in _alerts(ctx, archived=False)  # archiving removes an alert from the list
        if (alert_type is None or a["alert_type"] == alert_type) and (meter is None or _scope(a)[0] == meter)
    ]
    items, has_more = paginate_list(alerts, **page_params(ctx))
    return 200, list_object("/v1/billing/alerts", items, has_more)


def _transition(ctx, to: str):
    alert = require(ctx, ctx.path["id"], KIND, "billing alert")
    if alert["status"] == "archived":
        verb = {"active": "activate", "inactive": "deactivate", "archived": "archive"}[to]
        raise invalid(f"The alert {alert['id']} is archived and cannot be {verb}d.")
    alert["status"] = to
    return 200, ctx.tx.save(alert)


def activate(ctx):
    return _transition(ctx, "active")


def deactivate(ctx):
    return _transition(ctx, "inactive")


def archive(ctx):
    return _transition(ctx, "archived")


# -- evaluation ---------------------------------------------------------------------------------------


def _current_period(ctx, customer_id: str, meter_id: str, now: int) -> tuple[int, int] | None:
    """[start, end) of the customer's subscription period containing `now` (the subscription billing the meter
    first); None without a live subscription. A wall-clock subscription may not have closed its past periods
    yet: its boundaries are followed forward."""
    subs = [s for s in ctx.tx.find("subscription", customer=customer_id) if s["status"] in ("active", "past_due")]
    if not subs:
        return None

    def bills_meter(sub: dict) -> bool:
        return any(
            ((i.get("price") or {}).get("recurring") or {}).get("meter") == meter_id for i in sub["items"]["data"]
        )

    sub = next((s for s in subs if bills_meter(s)), subs[0])
    start, end = sub["_period_start"], sub["_period_end"]
    while now >= end:
        start, end = end, period_end_after(sub, end)
    return (start, end) if now >= start else None


def evaluate(ctx, pairs) -> None:
    """Trigger the active alerts of these (meter id, customer id) pairs whose threshold the usage has reached."""
    pairs = set(pairs)
    if not pairs:
        return
    active = ctx.tx.find(KIND, status="active")
    if not active:
        return
    for alert in active:
        meter_id, only = _scope(alert)
        for pair_meter, customer_id in sorted(pairs):
            if pair_meter != meter_id or (only is not None and only != customer_id):
                continue
            if customer_id in alert["_triggered"]:
                continue
            _evaluate_one(ctx, alert, customer_id)


def _evaluate_one(ctx, alert: dict, customer_id: str) -> None:
    customer = ctx.tx.get(customer_id, "customer")
    meter = ctx.tx.lookup(alert["usage_threshold"]["meter"], "billing.meter")
    if customer is None or meter is None:
        return
    now = ctx.customer_now(customer)
    period = _current_period(ctx, customer_id, meter["id"], now)
    if period is None:
        return
    value = aggregate(ctx.tx, meter, customer_id, *period, after_seq=alert["_after_seq"])
    if value < alert["usage_threshold"]["gte"]:
        return
    public_alert = {k: v for k, v in alert.items() if not k.startswith("_")}
    triggered = {
        "object": "billing.alert_triggered",
        "alert": public_alert,
        "created": now,
        "customer": customer_id,
        "external_customer_id": None,  # v1 customers have no external id
        "livemode": False,
        "value": json_number(value),
    }
    event = record_event(ctx, "billing.alert.triggered", triggered, created=now)
    alert["_triggered"][customer_id] = event["id"]
    ctx.tx.save(alert)


def evaluate_customers(ctx, customer_ids) -> None:
    """Every active alert's meter for these customers (a test clock moved: a new period may hold usage)."""
    customer_ids = set(customer_ids)
    if not customer_ids:
        return
    meters = {_scope(a)[0] for a in ctx.tx.find(KIND, status="active")}
    evaluate(ctx, {(m, c) for m in meters for c in customer_ids})


def register(r):
    r.add("POST", "/v1/billing/alerts", create)
    r.add("GET", "/v1/billing/alerts", list_)
    r.add("GET", "/v1/billing/alerts/{id}", retrieve)
    r.add("POST", "/v1/billing/alerts/{id}/activate", activate)
    r.add("POST", "/v1/billing/alerts/{id}/deactivate", deactivate)
    r.add("POST", "/v1/billing/alerts/{id}/archive", archive)

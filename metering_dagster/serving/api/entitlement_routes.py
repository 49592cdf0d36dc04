"""`/v1/entitlements`: may a customer use the service now (serving/entitlements.py decides, this shapes JSON).

Exact numbers are JSON strings without trailing zeros (`"25"`, `"0.5"`), never floats; times are ISO 8601 UTC
with a Z. The customer id is data: it is matched exactly against the published ids, never put in a path or SQL.
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from metering_dagster.display import quantity
from metering_dagster.serving.api.responses import error_response
from metering_dagster.serving.entitlements import ACCESS, Entitlement, read_entitlements, utc_text

# A local record of every answer given from stale data (fail-open decisions above all).
log = logging.getLogger("metering.serve")


def _exact(value) -> str | None:
    return None if value is None else quantity(value, grouped=False)


def entitlement_json(entitlement: Entitlement) -> dict:
    return {
        "customer_id": entitlement.customer_id,
        "access": entitlement.access,
        "reasons": list(entitlement.reasons),
        "budgets": [
            {
                "key": budget.key,
                "used": _exact(budget.used),
                "limit": _exact(budget.limit),
                "percent": _exact(budget.percent),
                "unit": budget.unit,
                "period_start": utc_text(budget.period_start),
                "period_end": utc_text(budget.period_end),
            }
            for budget in entitlement.budgets
        ],
        "as_of": utc_text(entitlement.as_of),
        "stale": entitlement.stale,
    }


def _read(request: Request, customer_id: str | None = None) -> list[Entitlement]:
    cursor = request.app.state.published.cursor()
    try:
        entitlements, stale_reason = read_entitlements(cursor, request.app.state.clock(), customer_id)
    finally:
        cursor.close()
    if stale_reason is not None and entitlements:
        answered = entitlements[0].customer_id if customer_id is not None else f"{len(entitlements)} customers"
        log.warning("answered %s from stale data, access %s: %s", answered, entitlements[0].access, stale_reason)
    return entitlements


def one_customer(request: Request) -> JSONResponse:
    found = _read(request, request.path_params["customer_id"])
    if not found:
        return error_response(404, "unknown_customer", "no customer with this id in the published data")
    return JSONResponse(entitlement_json(found[0]))


def every_customer(request: Request) -> JSONResponse:
    access = request.query_params.get("access")
    if access is not None and access not in ACCESS:
        return error_response(400, "invalid_access", "access must be allow or block")
    entitlements = _read(request)
    data = [entitlement_json(e) for e in entitlements if access is None or e.access == access]
    as_of = utc_text(entitlements[0].as_of) if entitlements else None
    return JSONResponse({"data": data, "as_of": as_of})


routes = [
    Route("/v1/entitlements", every_customer, methods=["GET"]),
    # `path`: an id with a `/` (or `%2F`) is an id like any other, looked up and not found
    Route("/v1/entitlements/{customer_id:path}", one_customer, methods=["GET"]),
]

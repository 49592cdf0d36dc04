"""`/healthz`, open to anyone: the server answers, and how old the published data is."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from metering_dagster.serving.entitlements import published_as_of, utc_text

HEALTH_PATH = "/healthz"


def health(request: Request) -> JSONResponse:
    cursor = request.app.state.published.cursor()  # NotPublished: 503, the app's handler
    try:
        as_of, stale = published_as_of(cursor, request.app.state.clock())
    finally:
        cursor.close()
    return JSONResponse({"status": "ok", "as_of": utc_text(as_of), "stale": stale})


routes = [Route(HEALTH_PATH, health, methods=["GET"])]

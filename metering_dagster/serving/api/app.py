"""The application: routes of each resource, the token check in front of them, errors as JSON.

It reads only the analysts' copy (`analytics.duckdb`, serving/entitlements.py), never the warehouse, and writes
nothing anywhere.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse

from metering_dagster.serving.api import entitlement_routes, health_routes
from metering_dagster.serving.api.auth import BearerTokenMiddleware
from metering_dagster.serving.api.responses import error_response
from metering_dagster.serving.entitlements import NotPublished, PublishedMarts
from metering_dagster.settings import Settings

log = logging.getLogger("metering.serve")

_HTTP_ERRORS = {
    400: ("bad_request", "the request cannot be read"),
    404: ("not_found", "no such route: the API has /healthz and /v1/entitlements[/{customer_id}]"),
    405: ("method_not_allowed", "the API answers GET only"),
}


def _not_published(request: Request, error: Exception) -> JSONResponse:
    return error_response(503, "not_published", str(error), {"Retry-After": "60"})


def _http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, HTTPException)
    code, detail = _HTTP_ERRORS.get(error.status_code, ("error", "the request cannot be answered"))
    return error_response(error.status_code, code, detail, error.headers)


def _server_error(request: Request, error: Exception) -> JSONResponse:
    log.exception("error answering %s %s", request.method, request.url.path)
    return error_response(500, "internal_error", "the server could not answer; its log says why")


def create_app(settings: Settings, token: str, *, clock: Callable[[], datetime] | None = None) -> Starlette:
    """The API over `settings.analytics_path`; every route but /healthz requires `token`. `clock` gives now (UTC)."""
    app = Starlette(
        routes=[*health_routes.routes, *entitlement_routes.routes],
        middleware=[Middleware(BearerTokenMiddleware, token=token, public_paths={health_routes.HEALTH_PATH})],
        exception_handlers={NotPublished: _not_published, HTTPException: _http_error, Exception: _server_error},
    )
    app.state.published = PublishedMarts(settings.analytics_path)
    app.state.clock = clock or (lambda: datetime.now(UTC))
    return app

"""The application: routes of each resource, the token check in front of them, errors as JSON (as HTML on the
console's pages).

It reads only the published copies, never the warehouse, and writes nothing anywhere: the analysts' copy
(`analytics.duckdb`, serving/entitlements.py) for the API and the console's pages, and the reader copy
(`reader.duckdb`) for what the console takes from the contract and `metering explain`'s explanation of a line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from metering_dagster.serving.api import entitlement_routes, health_routes
from metering_dagster.serving.api.auth import BearerTokenMiddleware, Credentials, wants_html
from metering_dagster.serving.api.responses import error_response
from metering_dagster.serving.console import pages
from metering_dagster.serving.console.static_files import LongCache
from metering_dagster.serving.console.tokens import CustomerTokens
from metering_dagster.serving.entitlements import NotPublished, PublishedMarts
from metering_dagster.serving.reader_copy import reader_path
from metering_dagster.settings import Settings

log = logging.getLogger("metering.serve")

_HTTP_ERRORS = {
    400: ("bad_request", "the request cannot be read"),
    403: ("forbidden", "this token does not see this customer"),
    404: ("not_found", "nothing here: the API has /healthz and /v1/entitlements[/{customer_id}], the console /"),
    405: ("method_not_allowed", "the API answers GET only"),
}


def _html_error(status: int, detail: str, headers=None) -> HTMLResponse:
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Usage console</title>'
        '<link rel="stylesheet" href="/static/console.css"></head><body><main>'
        f'<p data-testid="error" data-status="{status}">{detail}.</p><p><a href="/">Customers</a></p></main></body></html>'
    )
    return HTMLResponse(page, status_code=status, headers=headers)


def _answer(request: Request, status: int, code: str, detail: str, headers=None) -> Response:
    if wants_html(request.url.path, request.headers.get("accept")):
        return _html_error(status, detail[:1].upper() + detail[1:], headers)
    return error_response(status, code, detail, headers)


def _not_published(request: Request, error: Exception) -> Response:
    return _answer(request, 503, "not_published", str(error), {"Retry-After": "60"})


def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    code, detail = _HTTP_ERRORS.get(error.status_code, ("error", "the request cannot be answered"))
    return _answer(request, error.status_code, code, detail, error.headers)


def _server_error(request: Request, error: Exception) -> Response:
    log.exception("error answering %s %s", request.method, request.url.path)
    return _answer(request, 500, "internal_error", "the server could not answer; its log says why")


def create_app(settings: Settings, token: str, *, clock: Callable[[], datetime] | None = None) -> Starlette:
    """The API and the console over the published copies in `settings.state_dir`; every route but /healthz, the
    sign-in form and the static files requires `token` or a customer token. `clock` gives now (UTC)."""
    credentials = Credentials(token, CustomerTokens(settings.state_dir))
    public = {health_routes.HEALTH_PATH, pages.LOGIN_PATH, pages.LOGOUT_PATH}
    app = Starlette(
        routes=[
            *health_routes.routes,
            *entitlement_routes.routes,
            *pages.routes,
            Mount("/static", app=LongCache(StaticFiles(packages=[("metering_dagster.serving.console", "static")]))),
        ],
        middleware=[Middleware(BearerTokenMiddleware, credentials=credentials, public_paths=public)],
        exception_handlers={NotPublished: _not_published, HTTPException: _http_error, Exception: _server_error},
    )
    app.state.published = PublishedMarts(settings.analytics_path)
    app.state.reader = PublishedMarts(
        reader_path(settings), catalog="reader", required=(("contract", "meters"), ("marts", "fct_metered_events"))
    )
    app.state.credentials = credentials
    app.state.clock = clock or (lambda: datetime.now(UTC))
    return app

"""The console's routes: the pages, the downloads and the sign-in form.

Every customer URL is read from the raw path, segment by segment (serving/api/auth.py), so an id with a `/`
(`%2F`) or any other character is one segment and data: it is matched exactly against the published ids and
passed to SQL as a parameter. Who may see a customer is checked by `allow_customer` before anything is read.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from decimal import Decimal
from urllib.parse import parse_qs, quote

import polars as pl
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from metering_dagster.display import money, quantity
from metering_dagster.serving.api.auth import (
    SESSION_COOKIE,
    Credentials,
    allow_customer,
    path_segments,
    principal_of,
)
from metering_dagster.serving.console import charts, queries
from metering_dagster.serving.console.pdf import Pdf
from metering_dagster.serving.console.statement_pdf import statement_pdf
from metering_dagster.serving.entitlements import utc_text
from metering_dagster.serving.explanation import EVENT_COLUMNS, explain_lines, period_events, write_events_csv

REFRESH_SECONDS = 10
_SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # vega compiles its expressions with Function(): 'unsafe-eval' for scripts, nothing inline, nothing remote
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
}


def plain(value) -> str:
    """The exact value for a `data-value` attribute: integer cents as they are, quantities without trailing zeros."""
    if value is None:
        return ""
    if isinstance(value, int):
        return str(value)
    return quantity(value, grouped=False)


def period_text(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def day_text(value: datetime | None) -> str:
    return "-" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d")


def customer_url(customer_id: str, *parts: str) -> str:
    return "/".join(["/customers", quote(customer_id, safe=""), *(quote(p, safe="") for p in parts)])


def line_url(customer_id: str, start: datetime, meter: str) -> str:
    return customer_url(customer_id, "periods", period_text(start), "meters", meter)


def statement_url(customer_id: str, start: datetime) -> str:
    return customer_url(customer_id, "periods", period_text(start), "statement")


_env = Environment(
    loader=PackageLoader("metering_dagster.serving.console", "templates"), autoescape=select_autoescape()
)
_env.filters.update(
    money=lambda cents, currency="usd": money(cents, currency),
    qty=quantity,
    plain=plain,
    day=day_text,
    period=period_text,
    spec=charts.spec_json,
)
_env.globals.update(
    customer_url=customer_url, line_url=line_url, statement_url=statement_url, utc_text=utc_text, quote=quote
)


def _refresh(request: Request) -> int:
    try:
        return min(max(int(request.query_params.get("refresh", REFRESH_SECONDS)), 1), 3600)
    except ValueError:
        return REFRESH_SECONDS


def render(request: Request, template: str, status: int = 200, **context) -> HTMLResponse:
    as_of = context.pop("as_of", None)
    principal = getattr(request.state, "principal", None)
    html = _env.get_template(template).render(
        as_of=utc_text(as_of), refresh=_refresh(request), principal=principal, **context
    )
    return HTMLResponse(html, status_code=status, headers=_SECURITY_HEADERS)


def _page_number(request: Request) -> int:
    try:
        return max(int(request.query_params.get("page", "1")), 1)
    except ValueError:
        return 1


# --- the customers page ------------------------------------------------------------------------------------------


def customers(request: Request) -> Response:
    principal = principal_of(request)
    if principal.customer_id is not None:
        return RedirectResponse(customer_url(principal.customer_id), status_code=303)
    page = _page_number(request)
    cursor = request.app.state.published.cursor()
    try:
        as_of, _ = queries.data_as_of(cursor)
        rows, total = queries.customers_page(cursor, page)
    finally:
        cursor.close()
    pages = max((total + queries.PAGE_SIZE - 1) // queries.PAGE_SIZE, 1)
    return render(request, "customers.html", as_of=as_of, rows=rows, page=page, pages=pages, total=total)


# --- one customer ------------------------------------------------------------------------------------------------


def _meters(request: Request) -> dict[str, queries.Meter]:
    cursor = request.app.state.reader.cursor()
    try:
        return queries.meters_of(cursor)
    finally:
        cursor.close()


def _customer_or_404(cursor, customer_id: str) -> None:
    if not queries.customer_exists(cursor, customer_id):
        raise HTTPException(404)


def customer_page(request: Request, customer_id: str) -> Response:
    meters = _meters(request)
    cursor = request.app.state.published.cursor()
    try:
        _customer_or_404(cursor, customer_id)
        as_of, stripe_now = queries.data_as_of(cursor)
        periods = queries.periods_of(queries.invoice_lines(cursor, customer_id))
        current = queries.current_period(periods, stripe_now)
        history = [p for p in periods if current is not None and p.start < current.start]
        budgets = queries.budgets(cursor, customer_id)
        current_budgets = [b for b in budgets if current is not None and b.period_start == current.start]
        charts_of: dict[str, dict] = {}
        if current is not None:
            since = history[0].start if history else current.start
            daily = queries.daily_usage(cursor, customer_id, since, current.end)
            hourly = queries.hourly_usage(cursor, customer_id, current.start, meters)
            charts_of = _meter_charts(meters, current, daily, hourly, current_budgets)
    finally:
        cursor.close()
    return render(
        request,
        "customer.html",
        as_of=as_of,
        customer_id=customer_id,
        meters=meters,
        current=current,
        history=history,
        budgets=current_budgets,
        charts=charts_of,
    )


def _meter_charts(meters, current, daily, hourly, current_budgets) -> dict[str, dict]:
    """Per meter with a line in the current period: its three specs and their mark counts."""
    out = {}
    for line in current.lines:
        meter = meters.get(line.meter) or queries.Meter(line.meter, line.meter, "", "sum")
        days = [(d, q) for m, d, q, _ in daily if m == line.meter]
        days_now = [(d, q) for d, q in days if d >= current.start.date()]
        hours = [(h, q) for m, h, q, _ in hourly if m == line.meter]
        limit = next((b.limit for b in current_budgets if b.kind == "quantity" and b.meter == line.meter), None)
        out[line.meter] = {
            "daily": (charts.bars(days, meter.unit, title="Per day, this period and the previous one"), len(days)),
            "hourly": (charts.bars(hours, meter.unit, hourly=True, title="Per hour, this period"), len(hours)),
            "cumulative": (charts.cumulative(days_now, meter.unit, limit, additive=meter.additive), len(days_now)),
            "limit": limit,
        }
    return out


# --- one invoice line --------------------------------------------------------------------------------------------


def _period_start(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise HTTPException(404) from None
    if value.tzinfo is None:
        raise HTTPException(404)
    return value.astimezone(UTC)


def _line_or_404(cursor, customer_id: str, start: datetime, meter: str) -> queries.Line:
    _customer_or_404(cursor, customer_id)
    found = [line for line in queries.invoice_lines(cursor, customer_id, start) if line.meter == meter]
    if not found:
        raise HTTPException(404)
    return found[0]


def line_page(request: Request, customer_id: str, start: datetime, meter: str) -> Response:
    page = _page_number(request)
    cursor = request.app.state.published.cursor()
    try:
        line = _line_or_404(cursor, customer_id, start, meter)
        as_of, _ = queries.data_as_of(cursor)
        events = queries.line_events_page(cursor, customer_id, start, meter, page)
    finally:
        cursor.close()
    reader = request.app.state.reader.cursor()
    try:
        explanation = explain_lines(reader, customer_id, start.isoformat(), meter=meter)
        meters = queries.meters_of(reader)
    finally:
        reader.close()
    explained = explanation.lines[0] if explanation.lines else None
    event_total = explained.events if explained else 0
    pages = max((event_total + queries.PAGE_SIZE - 1) // queries.PAGE_SIZE, 1)
    return render(
        request,
        "line.html",
        as_of=as_of,
        customer_id=customer_id,
        line=line,
        meter=meters.get(meter),
        explanation=explanation,
        explained=explained,
        events=events,
        page=page,
        pages=pages,
    )


def _events(request: Request, customer_id: str, start: datetime, meter: str) -> list[tuple]:
    cursor = request.app.state.published.cursor()
    try:
        _line_or_404(cursor, customer_id, start, meter)
        return period_events(cursor, customer_id, start.isoformat(), meter)
    finally:
        cursor.close()


def _download_name(customer_id: str, start: datetime, meter: str, suffix: str) -> str:
    safe = "".join(c if c.isalnum() or c in "_-" else "_" for c in f"{customer_id}_{start:%Y%m%d}_{meter}")
    return f"{safe}.{suffix}"


def events_csv(request: Request, customer_id: str, start: datetime, meter: str) -> Response:
    out = io.StringIO()
    write_events_csv(_events(request, customer_id, start, meter), out)
    name = _download_name(customer_id, start, meter, "csv")
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"', **_SECURITY_HEADERS},
    )


def events_parquet(request: Request, customer_id: str, start: datetime, meter: str) -> Response:
    rows = _events(request, customer_id, start, meter)
    schema = {
        "meter": pl.String,
        "event_id": pl.String,
        "event_ts": pl.Datetime("us", "UTC"),
        "value": pl.Decimal(38, 12),
        "source_file": pl.String,
        "line_number": pl.Int64,
        "landing_run_id": pl.Int64,
    }
    assert tuple(schema) == EVENT_COLUMNS
    frame = pl.DataFrame(rows, schema=schema, orient="row")
    out = io.BytesIO()
    frame.write_parquet(out)
    name = _download_name(customer_id, start, meter, "parquet")
    return Response(
        out.getvalue(),
        media_type="application/vnd.apache.parquet",
        headers={"Content-Disposition": f'attachment; filename="{name}"', **_SECURITY_HEADERS},
    )


# --- the statement -----------------------------------------------------------------------------------------------


def _statement(request: Request, customer_id: str, start: datetime):
    cursor = request.app.state.published.cursor()
    try:
        _customer_or_404(cursor, customer_id)
        lines = queries.invoice_lines(cursor, customer_id, start)
        if not lines:
            raise HTTPException(404)
        period = queries.periods_of(lines)[0]
        as_of, _ = queries.data_as_of(cursor)
        daily = queries.daily_usage(cursor, customer_id, period.start, period.end)
    finally:
        cursor.close()
    per_day: dict = {}
    for _, day, _, events in daily:
        per_day[day] = per_day.get(day, 0) + events
    days = sorted(per_day.items())
    return period, as_of, days


def statement(request: Request, customer_id: str, start: datetime) -> Response:
    period, as_of, days = _statement(request, customer_id, start)
    meters = _meters(request)
    spec = charts.bars([(d, Decimal(n)) for d, n in days], "events", title="Events per day")
    return render(
        request,
        "statement.html",
        as_of=as_of,
        customer_id=customer_id,
        period=period,
        meters=meters,
        statement_chart=(spec, len(days)),
    )


def statement_download(request: Request, customer_id: str, start: datetime) -> Response:
    period, as_of, days = _statement(request, customer_id, start)
    body = statement_pdf(Pdf(), customer_id, period, _meters(request), days, as_of)
    name = _download_name(customer_id, start, "statement", "pdf")
    return Response(
        body,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{name}"', **_SECURITY_HEADERS},
    )


# --- dispatch on the raw path ------------------------------------------------------------------------------------


def customer_routes(request: Request) -> Response:
    """`/customers/...`: the segments of the raw path decide the page (module doc)."""
    segments = path_segments(request.scope.get("raw_path") or request.url.path.encode())[1:]
    if not segments or any(part in ("", ".", "..") for part in segments):
        raise HTTPException(404)
    customer_id = segments[0]
    allow_customer(request, customer_id)
    rest = segments[1:]
    if not rest:
        return customer_page(request, customer_id)
    if len(rest) < 3 or rest[0] != "periods":
        raise HTTPException(404)
    start = _period_start(rest[1])
    if rest[2:] == ["statement"]:
        return statement(request, customer_id, start)
    if rest[2:] == ["statement.pdf"]:
        return statement_download(request, customer_id, start)
    if len(rest) >= 4 and rest[2] == "meters":
        meter = rest[3]
        if len(rest) == 4:
            return line_page(request, customer_id, start, meter)
        if rest[4:] == ["events.csv"]:
            return events_csv(request, customer_id, start, meter)
        if rest[4:] == ["events.parquet"]:
            return events_parquet(request, customer_id, start, meter)
    raise HTTPException(404)


# --- signing in ----------------------------------------------------------------------------------------------------

LOGIN_PATH, LOGOUT_PATH = "/login", "/logout"  # open to anyone: the way in and out
_MAX_FORM_BYTES = 4096


def _safe_next(target: str | None) -> str:
    """Only a path of this site (never `//host` or a scheme): where to go after signing in."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def login_form(request: Request) -> Response:
    return render(request, "login.html", error=None, next=_safe_next(request.query_params.get("next")))


async def login(request: Request) -> Response:
    body = await request.body()
    if len(body) > _MAX_FORM_BYTES:
        return render(request, "login.html", status=413, error="The form is too large.", next="/")
    form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    token = (form.get("token") or [""])[0].strip()
    target = _safe_next((form.get("next") or ["/"])[0])
    credentials: Credentials = request.app.state.credentials
    if not token or credentials.principal(token) is None:
        return render(request, "login.html", status=401, error="This token is not one of this server's.", next=target)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


def logout(request: Request) -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


routes = [
    Route("/", customers, methods=["GET"]),
    Route(LOGIN_PATH, login_form, methods=["GET"]),
    Route(LOGIN_PATH, login, methods=["POST"]),
    Route(LOGOUT_PATH, logout, methods=["POST"]),
    Route("/customers/{rest:path}", customer_routes, methods=["GET"]),
]

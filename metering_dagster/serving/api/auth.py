"""Who may ask, and what: one middleware in front of every route, except the public ones.

A caller shows a token as `Authorization: Bearer <token>` or, from a browser that signed in at /login, as the
`metering_session` cookie. The admin token (METERING_API_TOKEN) sees everything; a customer token
(serving/console/tokens.py) sees only its customer: `/`, that customer's console pages and downloads, and
`/v1/entitlements/<its id>`; any other path is 403 before a route runs, so a route added later is closed to
customer tokens until it is listed here. Routes check the customer again (`allow_customer`).

Paths are judged on their raw bytes, segment by segment, each segment percent-decoded once: `..`, `.` and empty
segments are refused to customer tokens rather than resolved, an id in another case is another id. Tokens are
compared in constant time (the admin's) or by hash (customers'), never logged or repeated in a response.
"""

from __future__ import annotations

import hmac
from collections.abc import Collection
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from urllib.parse import unquote

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from metering_dagster.serving.api.responses import error_response
from metering_dagster.serving.console.tokens import CustomerTokens

_CHALLENGE = 'Bearer realm="metering"'
SESSION_COOKIE = "metering_session"
PUBLIC_PREFIXES = ("/static/",)


@dataclass(frozen=True)
class Principal:
    """Who is asking: `customer_id` None is the admin (every customer)."""

    customer_id: str | None

    def may_see(self, customer_id: str) -> bool:
        return self.customer_id is None or self.customer_id == customer_id


def bearer_token(authorization: str | None) -> str | None:
    """The credentials of a `Bearer` Authorization header (the scheme in any case, RFC 7235), else None."""
    if not authorization:
        return None
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return credentials.strip() or None


def session_token(cookie_header: str | None) -> str | None:
    if not cookie_header:
        return None
    try:
        cookie = SimpleCookie(cookie_header)
    except CookieError:
        return None
    morsel = cookie.get(SESSION_COOKIE)
    return (morsel.value or None) if morsel is not None else None


def path_segments(raw_path: bytes) -> list[str]:
    """`/customers/org%2Fone/x` -> ["customers", "org/one", "x"]: each segment decoded once, never re-split."""
    text = raw_path.decode("latin-1")
    return [unquote(part, errors="replace") for part in text.split("/")[1:]]


def customer_may_reach(segments: list[str], customer_id: str) -> bool:
    """Whether a customer token may reach this path at all (routes check the customer again)."""
    if segments == [""]:
        return True  # `/`: redirected to the customer's own page
    if any(part in ("", ".", "..") for part in segments):
        return False
    if segments[0] == "customers":
        # past the id, a segment is a fixed word, a period start or a meter key: one that decodes to a path is a trick
        rest = segments[2:]
        if any(char in part for part in rest for char in ("/", "\\", "\x00")):
            return False
        return len(segments) >= 2 and segments[1] == customer_id
    return segments[:2] == ["v1", "entitlements"] and len(segments) == 3 and segments[2] == customer_id


def wants_html(path: str, accept: str | None) -> bool:
    """A browser asking for a page (it sends `Accept: text/html`) gets HTML; the API, downloads and scripts JSON."""
    return (
        "text/html" in (accept or "")
        and not path.startswith("/v1/")
        and not path.endswith((".csv", ".parquet", ".pdf"))
    )


_SIGN_IN_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sign in</title>
<meta http-equiv="refresh" content="0; url=/login"></head>
<body><p>{message}: <a href="/login" data-testid="login-link">sign in</a>.</p></body></html>"""


def _refusal(scope: Scope, status: int, code: str, detail: str, challenge: str | None) -> Response:
    headers = {"WWW-Authenticate": challenge} if challenge else None
    if wants_html(scope["path"], Headers(scope=scope).get("accept")):
        if status == 401:
            return HTMLResponse(_SIGN_IN_PAGE.format(message=detail), status_code=status, headers=headers)
        return HTMLResponse(
            f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Not allowed</title></head>'
            f'<body><p data-testid="forbidden">{detail}.</p><p><a href="/">Back</a></p></body></html>',
            status_code=status,
        )
    return error_response(status, code, detail, headers)


class Credentials:
    """The tokens this server knows: the admin's, and the customers' stored hashed in the state folder."""

    def __init__(self, token: str, customer_tokens: CustomerTokens | None = None):
        self._token = token.encode()
        self._customer_tokens = customer_tokens

    def principal(self, given: str) -> Principal | None:
        if hmac.compare_digest(given.encode("utf-8", "surrogatepass"), self._token):
            return Principal(None)
        if self._customer_tokens is not None:
            customer = self._customer_tokens.customer_of(given)
            if customer is not None:
                return Principal(customer)
        return None


class BearerTokenMiddleware:
    """401 without a known token on a non-public path; 403 for a customer token outside its customer."""

    def __init__(self, app: ASGIApp, credentials: Credentials, public_paths: Collection[str] = ()):
        self.app = app
        self._credentials = credentials
        self._public_paths = frozenset(public_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path in self._public_paths or path.startswith(PUBLIC_PREFIXES):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        given = bearer_token(headers.get("authorization")) or session_token(headers.get("cookie"))
        principal = self._credentials.principal(given) if given is not None else None
        if given is None:
            response = _refusal(scope, 401, "unauthorized", "send Authorization: Bearer <token>", _CHALLENGE)
        elif principal is None:
            response = _refusal(
                scope,
                401,
                "unauthorized",
                "the token is not one of this server's",
                f'{_CHALLENGE}, error="invalid_token"',
            )
        elif principal.customer_id is not None and not customer_may_reach(
            path_segments(scope.get("raw_path") or path.encode()), principal.customer_id
        ):
            response = _refusal(scope, 403, "forbidden", "this token does not see this customer", None)
        else:
            scope.setdefault("state", {})["principal"] = principal
            await self.app(scope, receive, send)
            return
        await response(scope, receive, send)


def principal_of(request: Request) -> Principal:
    return request.state.principal


def allow_customer(request: Request, customer_id: str) -> Principal:
    """403 unless the caller may see `customer_id` (the middleware has already refused most such paths)."""
    principal = principal_of(request)
    if not principal.may_see(customer_id):
        raise HTTPException(403)
    return principal

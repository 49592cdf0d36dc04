"""Who may ask: every route requires `Authorization: Bearer <METERING_API_TOKEN>`, except the public ones.

One middleware in front of every route, so a route added later (the console) is protected without saying so;
only the paths listed as public (the health check) are open. The token is compared in constant time and never
logged or repeated in a response.
"""

from __future__ import annotations

import hmac
from collections.abc import Collection

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from metering_dagster.serving.api.responses import error_response

_CHALLENGE = 'Bearer realm="metering"'


def bearer_token(authorization: str | None) -> str | None:
    """The credentials of a `Bearer` Authorization header (the scheme in any case, RFC 7235), else None."""
    if not authorization:
        return None
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return credentials.strip() or None


class BearerTokenMiddleware:
    """401 with `WWW-Authenticate: Bearer` for an HTTP request without the right token on a non-public path."""

    def __init__(self, app: ASGIApp, token: str, public_paths: Collection[str] = ()):
        self.app = app
        self._token = token.encode()
        self._public_paths = frozenset(public_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self._public_paths:
            await self.app(scope, receive, send)
            return
        given = bearer_token(Headers(scope=scope).get("authorization"))
        if given is None:
            response = error_response(
                401, "unauthorized", "send Authorization: Bearer <token>", {"WWW-Authenticate": _CHALLENGE}
            )
        elif not hmac.compare_digest(given.encode(), self._token):
            response = error_response(
                401,
                "unauthorized",
                "the bearer token is not the API's",
                {"WWW-Authenticate": f'{_CHALLENGE}, error="invalid_token"'},
            )
        else:
            await self.app(scope, receive, send)
            return
        await response(scope, receive, send)

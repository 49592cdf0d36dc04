"""The console's static files (its CSS and script, and the chart library in vendor/) with a long cache header:
they change only with the package, and a page must load fast."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CACHE_CONTROL = b"public, max-age=604800"


class LongCache:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_cached(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] in (200, 304):
                message["headers"] = [*message.get("headers", []), (b"cache-control", CACHE_CONTROL)]
            await send(message)

        await self.app(scope, receive, send_cached)

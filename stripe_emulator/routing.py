"""Routes: (method, path pattern) -> handler. Path segments written `{name}` are captured."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Route:
    method: str
    pattern: re.Pattern
    handler: Callable
    write: bool  # takes the write lock (also GETs that may close billing periods)
    auth: str = "key"  # "key": sk_test_ key; "session": v2 meter event session token


class Router:
    def __init__(self):
        self.routes: list[Route] = []

    def add(self, method: str, path: str, handler: Callable, *, write: bool | None = None, auth: str = "key"):
        regex = "^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path) + "$"
        self.routes.append(
            Route(method, re.compile(regex), handler, write if write is not None else method != "GET", auth)
        )

    def match(self, method: str, path: str):
        """(route, path params) or (None, None); a path matched with another method gives (None, {})."""
        other = None
        for r in self.routes:
            m = r.pattern.match(path)
            if m:
                if r.method == method:
                    return r, m.groupdict()
                other = {}
        return None, other

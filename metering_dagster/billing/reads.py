"""Reading from Stripe in bulk: whole lists as plain JSON, a few reads at a time.

The SDK turns every object of a response into a StripeObject, which costs more than the request
itself when a page holds a hundred invoices with their lines (about 10 ms an invoice here). Bulk
reads (`list_all`) go through the same client, its retries and its API version, with
`raw_request`, and keep the JSON as dicts. `pick` reads a field from either kind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import stripe


def list_all(client: stripe.StripeClient, path: str, params: dict[str, Any] | None = None) -> Iterator[dict]:
    """Every object of a Stripe list endpoint, pages of 100, as dicts."""
    query: dict[str, Any] = {"limit": 100, **(params or {})}
    while True:
        page = client.raw_request("get", path, **query).data
        yield from page["data"]
        if not page.get("has_more") or not page["data"]:
            return
        query["starting_after"] = page["data"][-1]["id"]


def pick(obj: Any, *path: str, default: Any = None) -> Any:
    """obj[path[0]][path[1]]... for dicts and StripeObjects alike; `default` where a step is missing."""
    for key in path:
        if obj is None:
            return default
        obj = obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)
    return default if obj is None else obj


def in_parallel(fn: Callable[[Any], Any], items: list, workers: int) -> list:
    """`fn` over `items` on a few threads, results in order: against Stripe each read is a round trip."""
    if workers <= 1 or len(items) <= 1:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="stripe-read") as pool:
        return list(pool.map(fn, items))

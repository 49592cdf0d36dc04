"""Helpers shared by the resource modules: lookups, Stripe list objects, pagination."""

from __future__ import annotations

from collections.abc import Callable

from ..errors import invalid, missing


def require(ctx, obj_id: str | None, type: str, kind: str | None = None, param: str = "id") -> dict:
    obj = ctx.tx.get(obj_id, type) if obj_id else None
    if obj is None:
        raise missing(kind or type, obj_id or "", param=param)
    return obj


def list_object(url: str, data: list, has_more: bool = False) -> dict:
    return {"object": "list", "data": data, "has_more": has_more, "url": url}


def page_params(ctx) -> dict:
    p = ctx.params
    limit = p.int("limit", default=10)
    if not 1 <= limit <= 100:
        raise invalid("Invalid limit: must be between 1 and 100", param="limit")
    return {"limit": limit, "starting_after": p.str("starting_after"), "ending_before": p.str("ending_before")}


def list_page(
    ctx,
    type: str,
    url: str,
    render: Callable = lambda o: o,
    order: str = "desc",
    keep: Callable | None = None,
    **filters,
) -> tuple[int, dict]:
    """A Stripe list response over stored objects; `keep` filters further in Python (unindexed fields)."""
    pp = page_params(ctx)
    if keep is None:
        items, has_more = ctx.tx.page(type, order=order, **pp, **filters)
    else:
        items, has_more = _kept_page(ctx.tx, type, order, keep, pp, filters)
    return 200, list_object(url, [render(o) for o in items], has_more)


SCAN_CHUNK = 500


def _kept_page(tx, type: str, order: str, keep: Callable, pp: dict, filters: dict) -> tuple[list[dict], bool]:
    """One page of the objects that pass `keep`, read from the cursor on in chunks.

    Decoding every stored object for every page made listing N objects cost N²/100 decodes
    (minutes for a few thousand invoices); a page now reads only as far as it needs.
    """
    limit = pp["limit"]
    forward = pp["ending_before"] is None
    cursor = pp["starting_after"] if forward else pp["ending_before"]
    kept: list[dict] = []
    size = limit + 1  # enough when every object passes; doubled while few do
    while len(kept) <= limit:
        chunk, more = tx.page(
            type,
            order=order,
            limit=size,
            starting_after=cursor if forward else None,
            ending_before=None if forward else cursor,
            **filters,
        )
        size = min(size * 2, SCAN_CHUNK)
        passed = [o for o in chunk if keep(o)]
        kept = kept + passed if forward else passed + kept
        if not more or not chunk:
            break
        cursor = chunk[-1]["id"] if forward else chunk[0]["id"]
    if forward:
        return kept[:limit], len(kept) > limit
    return kept[-limit:], len(kept) > limit


def paginate_list(items: list[dict], limit: int, starting_after=None, ending_before=None):
    """Pagination over an already ordered Python list (by `id`)."""
    ids = [o["id"] for o in items]
    if starting_after:
        if starting_after not in ids:
            raise missing("object", starting_after, param="starting_after")
        rest = items[ids.index(starting_after) + 1 :]
        return rest[:limit], len(rest) > limit
    if ending_before:
        if ending_before not in ids:
            raise missing("object", ending_before, param="ending_before")
        before = items[: ids.index(ending_before)]
        return before[-limit:], len(before) > limit
    return items[:limit], len(items) > limit


def created_filter(params) -> Callable | None:
    """Stripe's `created` list filter: an exact timestamp or a range (gt, gte, lt, lte)."""
    if "created" not in params:
        return None
    raw = params.raw("created")
    if not isinstance(raw, dict):
        exact = params.int("created")
        return lambda o: o["created"] == exact
    bounds = params.sub("created")
    tests = []
    for op, test in (
        ("gt", lambda v, b: v > b),
        ("gte", lambda v, b: v >= b),
        ("lt", lambda v, b: v < b),
        ("lte", lambda v, b: v <= b),
    ):
        bound = bounds.int(op)
        if bound is not None:
            tests.append((test, bound))
    return lambda o: all(test(o["created"], bound) for test, bound in tests)


def str_filters(params, keys) -> dict:
    """Indexed list filters taken as given (`customer=...`, `subscription=...`)."""
    return {k: params.str(k) for k in keys if k in params}


def update_fields(obj: dict, params, str_keys=(), bool_keys=()) -> dict:
    """Apply the simple updatable fields present in the request, and Stripe's metadata merge."""
    from ..params import merge_metadata

    for key in str_keys:
        if key in params:
            obj[key] = params.str(key)
    for key in bool_keys:
        if key in params:
            obj[key] = params.bool(key)
    obj["metadata"] = merge_metadata(obj.get("metadata") or {}, params.raw("metadata"))
    return obj


def deleted(obj_id: str, object_name: str) -> dict:
    return {"id": obj_id, "object": object_name, "deleted": True}

"""Reading from Stripe in bulk: whole lists as plain JSON, a few reads at a time.

The SDK turns every object of a response into a StripeObject, which costs more than the request
itself when a page holds a hundred invoices with their lines (about 10 ms an invoice here). Bulk
reads (`list_all`) go through the same client, its retries and its API version, with
`raw_request`, and keep the JSON as dicts. `pick` reads a field from either kind.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import duckdb
import stripe

from metering_dagster.billing.problems import CustomerProblems
from metering_dagster.billing.values import decimal_from_json_number, metadata_of


def list_all(client: stripe.StripeClient, path: str, params: dict[str, Any] | None = None) -> Iterator[dict]:
    """Every object of a Stripe list endpoint, pages of 100, as dicts.

    The next page is asked for as soon as a page arrives, before its objects are handed out: Stripe prepares it
    while we read this one (a page of invoices costs both sides about as much). The same requests, in the same
    order; a reader that stops early leaves at most that one page unread.
    """
    query: dict[str, Any] = {"limit": 100, **(params or {})}
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="stripe-page") as pool:
        page = client.raw_request("get", path, **query).data
        while True:
            following = None
            if page.get("has_more") and page["data"]:
                query["starting_after"] = page["data"][-1]["id"]
                following = pool.submit(lambda q=dict(query): client.raw_request("get", path, **q).data)
            try:
                yield from page["data"]
            except BaseException:
                if following is not None:
                    following.cancel()
                raise
            if following is None:
                return
            page = following.result()


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


def invoice_lines_of(client: stripe.StripeClient, invoice: Any):
    """An invoice's lines: the ones embedded in it when they are all there, else listed."""
    embedded = pick(invoice, "lines")
    if embedded is not None and not pick(embedded, "has_more"):
        return pick(embedded, "data", default=[])
    return list_all(client, f"/v1/invoices/{pick(invoice, 'id')}/lines")


# Below this many customers, one list per customer costs less than lists of the account's invoices.
FEW_CUSTOMERS = 5


def invoices_of(
    client: stripe.StripeClient,
    stripe_customers: dict[str, str],
    created_since: int | None = None,
    per_customer_below: int = FEW_CUSTOMERS,
    status: str | None = None,
    problems: CustomerProblems | None = None,
) -> Iterator[tuple[str, dict]]:
    """(our customer id, invoice JSON) for the given customers ({Stripe id: ours}), created since a time,
    in one status if given. With `problems`, a customer whose own list fails is recorded there and skipped.

    A few customers: one list each. More: one list of the account's invoices created since then,
    100 a page, kept to our customers: a page costs what one customer's list costs.
    """
    created = {"created": {"gte": created_since}} if created_since is not None else {}
    if status is not None:
        created["status"] = status
    if len(stripe_customers) < per_customer_below:
        for stripe_customer, customer_id in stripe_customers.items():
            # a customer's list that fails is that customer's problem: what it yielded is not used
            with problems.guard(customer_id) if problems is not None else contextlib.nullcontext():
                for invoice in list_all(client, "/v1/invoices", {"customer": stripe_customer, **created}):
                    yield customer_id, invoice
        return
    for invoice in list_all(client, "/v1/invoices", created):
        customer_id = stripe_customers.get(invoice.get("customer"))
        if customer_id is not None:
            yield customer_id, invoice


# An invoice line's quantity and meter, as the snapshot and period close both read them.
def _line_price_id(line: Any) -> str | None:
    price = pick(line, "pricing", "price_details", "price") or pick(line, "price")
    if price is None:
        return None
    return price if isinstance(price, str) else pick(price, "id")


def line_quantity(line: Any) -> Decimal | None:
    q = pick(line, "quantity_decimal")
    if q is None:
        q = pick(line, "quantity")
    return None if q is None else decimal_from_json_number(q)


class MeterOfPrice:
    def __init__(self, client: stripe.StripeClient, con: duckdb.DuckDBPyConnection):
        self.client = client
        self.by_price = dict(con.execute("SELECT stripe_price_id, meter FROM ops.stripe_prices").fetchall())
        self.by_meter_id = dict(con.execute("SELECT stripe_meter_id, meter FROM ops.stripe_meters").fetchall())

    def __call__(self, line: Any) -> str | None:
        price_id = _line_price_id(line)
        if price_id is not None and price_id not in self.by_price:
            try:
                price = self.client.v1.prices.retrieve(price_id)
                meter_id = price.recurring.meter if price.recurring is not None else None
            except stripe.InvalidRequestError:
                meter_id = None
            self.by_price[price_id] = self.by_meter_id.get(meter_id)
        if price_id is not None and self.by_price.get(price_id):
            return self.by_price[price_id]
        return metadata_of(line).get("metering_meter")

"""Invoices and previews with more lines than Stripe embeds (10): the SDK pages the rest from `lines.url`,
`/v1/invoices/{id}/lines`, for a preview (`upcoming_in_…`) as for an invoice."""

from __future__ import annotations

import pytest
import stripe

from .conftest import DAY, T0

FEB1 = T0 + 31 * DAY
HOUR = 3600
METERS = 12


@pytest.fixture
def twelve_meters(build, client):
    """A subscription on 12 metered prices (meter i: i + 1 units at 100 + i cents) and 2 pending invoice items:
    14 lines, each amount its own."""
    clock = build.clock(T0)
    customer = build.customer(clock)
    meters = [build.meter() for _ in range(METERS)]
    prices = [build.price(meter, unit_amount=100 + i) for i, meter in enumerate(meters)]
    sub = client.v1.subscriptions.create({"customer": customer.id, "items": [{"price": p.id} for p in prices]})
    for i, meter in enumerate(meters):
        build.event(meter, customer, i + 1, T0 + 60)
    for amount in (250, 75):
        client.v1.invoice_items.create({"customer": customer.id, "amount": amount, "currency": "usd"})
    amounts = [(i + 1) * (100 + i) for i in range(METERS)] + [250, 75]
    return clock, customer, meters, sub, amounts


def _embeds_ten(invoice):
    assert (len(invoice.lines.data), invoice.lines.has_more) == (10, True)
    assert invoice.lines.url == f"/v1/invoices/{invoice.id}/lines"


def test_preview_and_final_invoice_page_all_14_lines(build, client, twelve_meters):
    clock, customer, meters, sub, amounts = twelve_meters
    preview = client.v1.invoices.create_preview({"subscription": sub.id})
    _embeds_ten(preview)
    lines = list(preview.lines.auto_paging_iter())
    assert [line.amount for line in lines] == amounts
    assert len({line.id for line in lines}) == 14 and preview.total == sum(amounts)
    assert [line.id for line in lines[:10]] == [line.id for line in preview.lines.data]

    # the preview's lines stay as computed when it was returned; a new preview sees the new usage
    build.event(meters[0], customer, 1000, T0 + 120)
    assert [line.amount for line in client.v1.invoices.line_items.list(preview.id, {"limit": 100}).data] == amounts
    newer = client.v1.invoices.create_preview({"subscription": sub.id})
    assert next(iter(newer.lines.auto_paging_iter())).amount == 1001 * 100

    build.advance(clock, FEB1 + 2 * HOUR)
    (final,) = client.v1.invoices.list({"subscription": sub.id}).data
    assert final.status == "open"
    _embeds_ten(final)
    final_amounts = [1001 * 100] + amounts[1:]
    assert [line.amount for line in final.lines.auto_paging_iter()] == final_amounts
    assert final.total == sum(final_amounts)
    retrieved = client.v1.invoices.retrieve(final.id)
    _embeds_ten(retrieved)
    assert [line.amount for line in retrieved.lines.auto_paging_iter()] == final_amounts


def _ids(page):
    return [line.id for line in page.data]


@pytest.mark.parametrize("kind", ["preview", "invoice"])
def test_lines_pagination_parameters(build, client, twelve_meters, kind):
    clock, _, _, sub, _ = twelve_meters
    if kind == "preview":
        invoice_id = client.v1.invoices.create_preview({"subscription": sub.id}).id
    else:
        build.advance(clock, FEB1 + 2 * HOUR)
        invoice_id = client.v1.invoices.list({"subscription": sub.id}).data[0].id
    every = _ids(client.v1.invoices.line_items.list(invoice_id, {"limit": 100}))
    assert len(every) == 14
    first = client.v1.invoices.line_items.list(invoice_id, {"limit": 5})
    assert (_ids(first), first.has_more) == (every[:5], True)
    second = client.v1.invoices.line_items.list(invoice_id, {"limit": 5, "starting_after": every[4]})
    assert (_ids(second), second.has_more) == (every[5:10], True)
    last = client.v1.invoices.line_items.list(invoice_id, {"limit": 100, "starting_after": every[9]})
    assert (_ids(last), last.has_more) == (every[10:], False)
    back = client.v1.invoices.line_items.list(invoice_id, {"limit": 3, "ending_before": every[5]})
    assert (_ids(back), back.has_more) == (every[2:5], True)
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.invoices.line_items.list(invoice_id, {"limit": 101})
    assert err.value.param == "limit"


def test_previews_are_not_invoices_and_old_ones_expire(build, client, twelve_meters):
    _, customer, _, sub, _ = twelve_meters
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.invoices.line_items.list("upcoming_in_unknown")
    assert (err.value.http_status, err.value.code, err.value.user_message) == (
        404,
        "resource_missing",
        "No such invoice: 'upcoming_in_unknown'",
    )
    oldest = client.v1.invoices.create_preview({"subscription": sub.id})
    with pytest.raises(stripe.InvalidRequestError, match="No such invoice"):
        client.v1.invoices.retrieve(oldest.id)
    assert oldest.id not in {i.id for i in client.v1.invoices.list({"customer": customer.id}).auto_paging_iter()}
    kept = [client.v1.invoices.create_preview({"subscription": sub.id}) for _ in range(5)]
    for preview in (kept[0], kept[-1]):  # a customer's newest 5 previews are kept
        assert len(client.v1.invoices.line_items.list(preview.id, {"limit": 100}).data) == 14
    with pytest.raises(stripe.InvalidRequestError, match=f"No such invoice: '{oldest.id}'"):
        client.v1.invoices.line_items.list(oldest.id)

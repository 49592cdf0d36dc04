"""Invoices (list, retrieve, lines, create, create_preview, update auto_advance, finalize, void, pay) and
invoice items. Reads first bring billing up to date (period closes, due finalizations), so they take the
write lock.

A preview (`upcoming_in_…`) is not an invoice: it is neither listed nor retrievable, but its lines as
computed when it was returned stay behind its lines URL, paginated like an invoice's, for the customer's
newest PREVIEWS_KEPT previews and at most PREVIEW_TTL seconds of wall time."""

from __future__ import annotations

from decimal import Decimal

from .. import billing_cycle, invoice_model, pricing
from ..errors import invalid, missing
from ..params import Params, merge_metadata
from ..storage import new_id
from .common import (
    created_filter,
    deleted,
    list_object,
    list_page,
    page_params,
    paginate_list,
    require,
    str_filters,
    update_fields,
)

PREVIEW_PREFIX = "upcoming_"
PREVIEWS_KEPT = 5
PREVIEW_TTL = 24 * 3600


def bring_up_to_date(ctx):
    """Close due periods of wall-clock subscriptions (test clocks only move when advanced)."""
    billing_cycle.process_wall_clock(ctx.tx, ctx.now(), ctx.settings.grace_period_seconds)


def _load(ctx) -> dict:
    bring_up_to_date(ctx)
    inv = require(ctx, ctx.path["id"], "invoice")
    return invoice_model.refresh_draft(ctx.tx, inv)


def retrieve(ctx):
    return 200, invoice_model.render(ctx.tx, _load(ctx))


def list_(ctx):
    bring_up_to_date(ctx)
    p = ctx.params
    filters = str_filters(p, ("customer", "subscription"))
    if "status" in p:
        filters["status"] = p.str("status", choices=("draft", "open", "paid", "uncollectible", "void"))
    # A draft follows its meters until finalized: brought up to date as it is returned.
    return list_page(
        ctx,
        "invoice",
        "/v1/invoices",
        render=lambda o: invoice_model.current(ctx.tx, o),
        keep=created_filter(p),
        **filters,
    )


def lines(ctx):
    if ctx.path["id"].startswith(PREVIEW_PREFIX):
        return _preview_lines(ctx, ctx.path["id"])
    inv = _load(ctx)
    return list_page(ctx, "line_item", f"/v1/invoices/{inv['id']}/lines", order="asc", invoice=inv["id"])


def _preview_lines(ctx, preview_id: str):
    """The lines of a preview returned lately, exactly as computed then, in their order."""
    kept = ctx.tx.preview_lines(preview_id)
    if kept is None:
        raise missing("invoice", preview_id)
    page, has_more = paginate_list(kept, **page_params(ctx))
    return 200, list_object(f"/v1/invoices/{preview_id}/lines", page, has_more)


def create(ctx):
    p = ctx.params
    customer = require(ctx, p.str("customer", required=True), "customer", param="customer")
    sub = None
    if "subscription" in p:
        sub = require(ctx, p.str("subscription"), "subscription", param="subscription")
    now = ctx.customer_now(customer)
    inv = invoice_model.new_invoice(
        customer,
        created=now,
        billing_reason="manual",
        currency=p.str("currency", default="usd"),
        subscription=sub,
        auto_advance=bool(p.bool("auto_advance", default=False)),
    )
    inv["description"] = p.str("description")
    inv["metadata"] = merge_metadata({}, p.raw("metadata"))
    if inv["auto_advance"]:
        inv["automatically_finalizes_at"] = now + 3600
    ctx.tx.insert(inv)
    if p.str("pending_invoice_items_behavior", default="exclude", choices=("include", "exclude")) == "include":
        billing_cycle.attach_pending_items(ctx.tx, inv, sub["id"] if sub else None)
    return 200, invoice_model.render(ctx.tx, invoice_model.refresh_draft(ctx.tx, inv))


def create_preview(ctx):
    """The upcoming invoice of a subscription (usage so far in its current period), or of pending items."""
    bring_up_to_date(ctx)
    p = ctx.params
    sub = None
    if "subscription" in p:
        sub = require(ctx, p.str("subscription"), "subscription", param="subscription")
    cid = p.str("customer") or (sub or {}).get("customer")
    if not cid:
        raise invalid("Provide `customer` or `subscription`.", param="customer")
    customer = require(ctx, cid, "customer", param="customer")
    if sub is None:
        subs = ctx.tx.find("subscription", customer=cid, status="active")
        sub = subs[0] if subs else None
    now = ctx.customer_now(customer)
    inv = invoice_model.new_invoice(
        customer, created=now, billing_reason="upcoming", subscription=sub, invoice_id=PREVIEW_PREFIX + new_id("in")
    )
    lines = []
    if sub is not None:
        start, end = sub["_period_start"], sub["_period_end"]
        inv.update(period_start=start, period_end=end, currency=sub["currency"], created=end)
        for item in sub["items"]["data"]:
            price = ctx.tx.get(item["price"]["id"], "price")
            if price["recurring"]["usage_type"] != "metered":
                continue
            line = invoice_model.new_line(
                inv,
                kind="metered",
                amount=0,
                currency=price["currency"],
                period=(start, end),
                description=None,
                price=price,
                subscription=sub["id"],
                subscription_item=item["id"],
            )
            lines.append(invoice_model.reprice_metered_line(ctx.tx, line))
    for ii in ctx.tx.find("invoiceitem", order="asc", customer=cid, invoice=None):
        if sub is None or ii.get("_subscription") in (None, sub["id"]):
            lines.append(billing_cycle.line_for_item(ctx.tx, inv, ii))
    invoice_model.set_totals(inv, lines)
    ctx.tx.keep_preview(
        inv["id"], cid, lines, created=ctx.now(), expire_before=ctx.now() - PREVIEW_TTL, keep_per_customer=PREVIEWS_KEPT
    )
    return 200, invoice_model.render(ctx.tx, inv, lines)


def update(ctx):
    inv = _load(ctx)
    p = ctx.params
    if "auto_advance" in p:
        inv["auto_advance"] = p.bool("auto_advance")
        if inv["status"] == "draft":
            due = (
                inv["period_end"] + ctx.settings.grace_period_seconds
                if inv["billing_reason"] == "subscription_cycle"
                else inv["created"] + 3600
            )
            inv["automatically_finalizes_at"] = due if inv["auto_advance"] else None
    update_fields(inv, p, ("description",))
    return 200, invoice_model.render(ctx.tx, ctx.tx.save(inv))


def finalize(ctx):
    inv = _load(ctx)
    if inv["status"] != "draft":
        raise invalid(f"This invoice is already finalized (status {inv['status']}).", code="invoice_not_editable")
    if "auto_advance" in ctx.params:
        inv["auto_advance"] = ctx.params.bool("auto_advance")
    inv = invoice_model.finalize(ctx.tx, inv, ctx.clock_now(inv.get("test_clock")))
    return 200, invoice_model.render(ctx.tx, inv)


def void(ctx):
    inv = _load(ctx)
    if inv["status"] not in ("open", "uncollectible"):
        raise invalid(
            f"You can only void open or uncollectible invoices; this one is {inv['status']}.",
            code="invoice_not_editable" if inv["status"] == "draft" else None,
        )
    inv["status"] = "void"
    inv["status_transitions"]["voided_at"] = ctx.clock_now(inv.get("test_clock"))
    return 200, invoice_model.render(ctx.tx, ctx.tx.save(inv))


def pay(ctx):
    inv = _load(ctx)
    if inv["status"] != "open":
        raise invalid(f"Only open invoices can be paid; this one is {inv['status']}.")
    if not ctx.params.bool("paid_out_of_band", default=False):
        raise invalid("The emulator has no payment methods; pass paid_out_of_band=true.", param="paid_out_of_band")
    inv.update(status="paid", amount_paid=inv["amount_due"], amount_remaining=0)
    inv["status_transitions"]["paid_at"] = ctx.clock_now(inv.get("test_clock"))
    return 200, invoice_model.render(ctx.tx, ctx.tx.save(inv))


# -- invoice items -----------------------------------------------------------------------------------
def create_item(ctx):
    p = ctx.params
    customer = require(ctx, p.str("customer", required=True), "customer", param="customer")
    quantity = p.int("quantity", default=1)
    price_id = p.str("price") or Params(p.dict("pricing")).str("price")
    price = require(ctx, price_id, "price", param="pricing[price]") if price_id else None
    if price is not None:
        amount = pricing.line_amount(price, price.get("_tiers"), Decimal(quantity))
        currency, unit = price["currency"], price.get("unit_amount_decimal")
    elif "unit_amount_decimal" in p or "unit_amount" in p:
        unit_d = p.decimal("unit_amount_decimal") if "unit_amount_decimal" in p else Decimal(p.int("unit_amount"))
        amount = pricing.round_cents(unit_d * quantity)
        currency, unit = p.str("currency", required=True), format(unit_d.normalize(), "f")
    else:
        amount = p.int("amount", required=True)
        currency, unit = p.str("currency", required=True), str(amount)
    now = ctx.customer_now(customer)
    period = p.sub("period")
    invoice_id = p.str("invoice")
    sub_id = p.str("subscription")
    if sub_id:
        require(ctx, sub_id, "subscription", param="subscription")
    obj = {
        "id": new_id("ii"),
        "object": "invoiceitem",
        "amount": amount,
        "currency": currency.lower(),
        "customer": customer["id"],
        "customer_account": None,
        "date": now,
        "description": p.str("description"),
        "discountable": True,
        "discounts": [],
        "invoice": None,
        "livemode": False,
        "metadata": merge_metadata({}, p.raw("metadata")),
        "net_amount": amount,
        "parent": {"type": "subscription_details", "subscription_details": {"subscription": sub_id}}
        if sub_id
        else None,
        "period": {"end": period.int("end", default=now), "start": period.int("start", default=now)},
        "pricing": {
            "type": "price_details",
            "unit_amount_decimal": unit,
            "price_details": {"price": price["id"], "product": price["product"]} if price else None,
        },
        "proration": False,
        "quantity": quantity,
        "quantity_decimal": str(quantity),
        "tax_rates": [],
        "test_clock": customer.get("test_clock"),
        "_subscription": sub_id,
    }
    ctx.tx.insert(obj)
    if invoice_id:
        inv = require(ctx, invoice_id, "invoice", param="invoice")
        if inv["status"] != "draft":
            raise invalid("Invoice items can only be added to draft invoices.", param="invoice")
        obj["invoice"] = inv["id"]
        ctx.tx.save(obj)
        ctx.tx.insert(billing_cycle.line_for_item(ctx.tx, inv, obj))
        invoice_model.refresh_draft(ctx.tx, inv)
    return 200, obj


def retrieve_item(ctx):
    return 200, require(ctx, ctx.path["id"], "invoiceitem", "invoice item")


def update_item(ctx):
    obj = require(ctx, ctx.path["id"], "invoiceitem", "invoice item")
    p = ctx.params
    if obj["invoice"] and ctx.tx.get(obj["invoice"], "invoice")["status"] != "draft":
        raise invalid("This invoice item is on a finalized invoice and can no longer be changed.")
    update_fields(obj, p, ("description",))
    if "amount" in p and obj["invoice"] is None:
        obj["amount"] = obj["net_amount"] = p.int("amount")
    return 200, ctx.tx.save(obj)


def delete_item(ctx):
    obj = require(ctx, ctx.path["id"], "invoiceitem", "invoice item")
    if obj["invoice"]:
        inv = ctx.tx.get(obj["invoice"], "invoice")
        if inv["status"] != "draft":
            raise invalid("This invoice item is on a finalized invoice and can no longer be deleted.")
        for line in invoice_model.lines_of(ctx.tx, inv["id"]):
            if (line["parent"].get("invoice_item_details") or {}).get("invoice_item") == obj["id"]:
                ctx.tx.delete(line["id"], hard=True)
        invoice_model.refresh_draft(ctx.tx, inv)
    ctx.tx.delete(obj["id"])
    return 200, deleted(obj["id"], "invoiceitem")


def list_items(ctx):
    p = ctx.params
    filters = str_filters(p, ("customer", "invoice"))
    pending = p.bool("pending")
    if pending is True:
        filters["invoice"] = None
    keep = (lambda o: o["invoice"] is not None) if pending is False else None
    return list_page(ctx, "invoiceitem", "/v1/invoiceitems", keep=keep, **filters)


def register(r):
    r.add("GET", "/v1/invoices", list_, write=True)
    r.add("POST", "/v1/invoices", create)
    r.add("POST", "/v1/invoices/create_preview", create_preview)
    r.add("GET", "/v1/invoices/{id}", retrieve, write=True)
    r.add("POST", "/v1/invoices/{id}", update)
    r.add("GET", "/v1/invoices/{id}/lines", lines, write=True)
    r.add("POST", "/v1/invoices/{id}/finalize", finalize)
    r.add("POST", "/v1/invoices/{id}/void", void)
    r.add("POST", "/v1/invoices/{id}/pay", pay)
    r.add("POST", "/v1/invoiceitems", create_item)
    r.add("GET", "/v1/invoiceitems", list_items)
    r.add("GET", "/v1/invoiceitems/{id}", retrieve_item)
    r.add("POST", "/v1/invoiceitems/{id}", update_item)
    r.add("DELETE", "/v1/invoiceitems/{id}", delete_item)

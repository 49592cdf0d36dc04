"""Invoice and line item documents: building them, pricing their lines, totals, finalization.

Shared by the invoice endpoints and the billing cycle. Money is integer cents; each line is priced with
`pricing.line_amount` (exact decimals, one half-up rounding per line).
"""

from __future__ import annotations

from decimal import Decimal

from . import aggregation, pricing
from .storage import new_id


def customer_snapshot(customer: dict) -> dict:
    return {
        "customer": customer["id"],
        "customer_account": None,
        "customer_address": customer.get("address"),
        "customer_email": customer.get("email"),
        "customer_name": customer.get("name"),
        "customer_phone": customer.get("phone"),
        "customer_shipping": customer.get("shipping"),
        "customer_tax_exempt": customer.get("tax_exempt", "none"),
        "customer_tax_ids": [],
    }


def new_invoice(
    customer: dict,
    *,
    created: int,
    billing_reason: str,
    currency: str = "usd",
    subscription: dict | None = None,
    period_start: int | None = None,
    period_end: int | None = None,
    auto_advance: bool = True,
    invoice_id: str | None = None,
) -> dict:
    parent = None
    if subscription is not None:
        parent = {
            "quote_details": None,
            "type": "subscription_details",
            "subscription_details": {
                "metadata": subscription.get("metadata") or {},
                "subscription": subscription["id"],
            },
        }
    return {
        "id": invoice_id or new_id("in"),
        "object": "invoice",
        "account_country": "US",
        "account_name": "Stripe emulator",
        "account_tax_ids": None,
        "amount_due": 0,
        "amount_overpaid": 0,
        "amount_paid": 0,
        "amount_remaining": 0,
        "amount_shipping": 0,
        "application": None,
        "attempt_count": 0,
        "attempted": False,
        "auto_advance": auto_advance,
        "automatic_tax": {
            "disabled_reason": None,
            "enabled": False,
            "liability": None,
            "provider": None,
            "status": None,
        },
        "automatically_finalizes_at": None,
        "billing_reason": billing_reason,
        "collection_method": (subscription or {}).get("collection_method", "charge_automatically"),
        "created": created,
        "currency": currency,
        "custom_fields": None,
        **customer_snapshot(customer),
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": [],
        "due_date": None,
        "effective_at": None,
        "ending_balance": None,
        "footer": None,
        "from_invoice": None,
        "hosted_invoice_url": None,
        "invoice_pdf": None,
        "issuer": {"type": "self"},
        "last_finalization_error": None,
        "latest_revision": None,
        "livemode": False,
        "metadata": {},
        "next_payment_attempt": None,
        "number": None,
        "on_behalf_of": None,
        "parent": parent,
        "payment_settings": {"default_mandate": None, "payment_method_options": None, "payment_method_types": None},
        "period_end": period_end if period_end is not None else created,
        "period_start": period_start if period_start is not None else created,
        "post_payment_credit_notes_amount": 0,
        "pre_payment_credit_notes_amount": 0,
        "receipt_number": None,
        "rendering": None,
        "shipping_cost": None,
        "shipping_details": None,
        "starting_balance": 0,
        "statement_descriptor": None,
        "status": "draft",
        "status_transitions": {
            "finalized_at": None,
            "marked_uncollectible_at": None,
            "paid_at": None,
            "voided_at": None,
        },
        "subscription": subscription["id"] if subscription else None,
        "subtotal": 0,
        "subtotal_excluding_tax": 0,
        "test_clock": customer.get("test_clock"),
        "total": 0,
        "total_discount_amounts": [],
        "total_excluding_tax": 0,
        "total_pretax_credit_amounts": [],
        "total_taxes": [],
        "webhooks_delivered_at": created,
    }


def _quantity_fields(q: Decimal) -> dict:
    whole = q == q.to_integral_value()
    return {"quantity": int(q) if whole else float(q), "quantity_decimal": format(q.normalize(), "f") if q else "0"}


def new_line(
    invoice: dict,
    *,
    kind: str,
    amount: int,
    currency: str,
    period: tuple[int, int],
    description: str | None,
    price: dict | None = None,
    quantity: Decimal = Decimal(1),
    subscription: str | None = None,
    subscription_item: str | None = None,
    invoice_item: str | None = None,
    metadata: dict | None = None,
) -> dict:
    if invoice_item:
        parent = {
            "type": "invoice_item_details",
            "subscription_item_details": None,
            "invoice_item_details": {
                "invoice_item": invoice_item,
                "proration": False,
                "proration_details": {"credited_items": None},
                "subscription": subscription,
            },
        }
    else:
        parent = {
            "type": "subscription_item_details",
            "invoice_item_details": None,
            "subscription_item_details": {
                "invoice_item": None,
                "proration": False,
                "proration_details": {"credited_items": None},
                "subscription": subscription,
                "subscription_item": subscription_item,
            },
        }
    pricing_info = {"type": "price_details", "unit_amount_decimal": None, "price_details": None}
    if price is not None:
        pricing_info = {
            "type": "price_details",
            "unit_amount_decimal": price.get("unit_amount_decimal"),
            "price_details": {"price": price["id"], "product": price["product"]},
        }
    return {
        "id": new_id("il"),
        "object": "line_item",
        "amount": amount,
        "currency": currency,
        "description": description,
        "discount_amounts": [],
        "discountable": True,
        "discounts": [],
        "invoice": invoice["id"],
        "livemode": False,
        "metadata": metadata or {},
        "parent": parent,
        "period": {"end": period[1], "start": period[0]},
        "pretax_credit_amounts": [],
        "pricing": pricing_info,
        **_quantity_fields(quantity),
        "subscription": subscription,
        "subtotal": amount,
        "taxes": [],
        "_kind": kind,
        "_customer": invoice["customer"],
    }


def metered_quantity(tx, price: dict, customer: str, start: int, end: int) -> Decimal:
    meter = tx.lookup(price["recurring"]["meter"], "billing.meter")
    if meter is None:
        return Decimal(0)
    return max(aggregation.aggregate(tx, meter, customer, start, end), Decimal(0))


def reprice_metered_line(tx, line: dict) -> dict:
    """A draft's metered line follows the meter until the invoice is finalized."""
    price = tx.lookup(line["pricing"]["price_details"]["price"], "price")
    q = metered_quantity(tx, price, line["_customer"], line["period"]["start"], line["period"]["end"])
    amount = pricing.line_amount(price, price.get("_tiers"), q)
    line.update(_quantity_fields(q), amount=amount, subtotal=amount)
    return line


def lines_of(tx, invoice_id: str) -> list[dict]:
    return tx.find("line_item", order="asc", invoice=invoice_id)


def refresh_draft(tx, invoice: dict) -> dict:
    """Recompute a draft's metered lines from the meters, then its totals."""
    return _refreshed(tx, invoice)[0]


def current(tx, invoice: dict) -> dict:
    """A stored invoice as the API returns it: brought up to date if a draft, with its first lines."""
    invoice, lines = _refreshed(tx, invoice)
    return render(tx, invoice, lines)


def _refreshed(tx, invoice: dict) -> tuple[dict, list[dict] | None]:
    """(the invoice, its lines as now) for a draft; (the invoice, None) for any other."""
    if invoice["status"] != "draft" or invoice["id"].startswith("upcoming_"):
        return invoice, None
    lines = lines_of(tx, invoice["id"])
    # No repricing when the customer's meter events and the invoice's lines are as at the last
    # refresh: keeps list pages of thousands of drafts cheap.
    events = tx.conn.execute(
        "SELECT max(seq), count(canceled_at) FROM meter_events WHERE customer = ?", (invoice["customer"],)
    ).fetchone()
    mark = [events[0], events[1], len(lines)]
    repriced = invoice.get("_metered_mark") != mark
    if repriced:
        invoice["_metered_mark"] = mark
        for line in lines:
            if line["_kind"] == "metered":
                before = (line["amount"], line["quantity_decimal"])
                reprice_metered_line(tx, line)
                if (line["amount"], line["quantity_decimal"]) != before:
                    tx.save(line)
    before = invoice.get("total")
    set_totals(invoice, lines)
    # a read writes only when something moved
    return (tx.save(invoice) if repriced or invoice.get("total") != before else invoice), lines


def set_totals(invoice: dict, lines: list[dict]):
    total = sum(line["amount"] for line in lines)
    invoice.update(
        subtotal=total,
        subtotal_excluding_tax=total,
        total=total,
        total_excluding_tax=total,
        amount_due=max(total, 0),
        amount_remaining=max(total, 0) - invoice["amount_paid"],
    )


def finalize(tx, invoice: dict, now: int) -> dict:
    refresh_draft(tx, invoice)
    customer = tx.get(invoice["customer"], "customer", include_deleted=True) or {}
    seq = customer.get("next_invoice_sequence", 1)
    if customer:
        customer["next_invoice_sequence"] = seq + 1
        tx.save(customer)
    invoice["number"] = f"{customer.get('invoice_prefix', 'EMU')}-{seq:04d}"
    invoice["status"] = "open"
    invoice["automatically_finalizes_at"] = None
    invoice["effective_at"] = now
    invoice["status_transitions"]["finalized_at"] = now
    invoice["hosted_invoice_url"] = f"https://invoice.stripe.com/i/emulator/{invoice['id']}"
    if invoice["amount_due"] == 0:
        invoice["status"] = "paid"
        invoice["status_transitions"]["paid_at"] = now
        invoice["amount_remaining"] = 0
    return tx.save(invoice)


def render(tx, invoice: dict, lines: list[dict] | None = None) -> dict:
    """The invoice with its first 10 lines embedded; the rest behind `lines.url`, as Stripe pages them."""
    if lines is None:
        lines = lines_of(tx, invoice["id"])
    return {
        **invoice,
        "lines": {
            "object": "list",
            "data": lines[:10],
            "has_more": len(lines) > 10,
            "url": f"/v1/invoices/{invoice['id']}/lines",
        },
    }

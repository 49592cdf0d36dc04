"""Price rules: the amount of one invoice line, in cents, from a Price and a quantity.

Exact decimals throughout; the line's amount is rounded half-up to whole cents once, at the end.
A negative quantity is billed as 0. Tiered prices: quantity 0 falls in the first tier (its flat amount is
charged). transform_quantity divides the quantity and rounds up or down to a whole number before pricing.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal


def _dec(v) -> Decimal:
    return Decimal(str(v)) if v not in (None, "") else Decimal(0)


def billable_quantity(price: dict, quantity: Decimal) -> Decimal:
    q = max(Decimal(quantity), Decimal(0))
    tq = price.get("transform_quantity")
    if tq:
        rounding = ROUND_CEILING if tq.get("round") == "up" else ROUND_FLOOR
        q = (q / Decimal(tq["divide_by"])).to_integral_value(rounding=rounding)
    return q


def exact_amount(price: dict, tiers: list[dict] | None, quantity: Decimal) -> Decimal:
    """Exact amount in cents (not yet rounded)."""
    q = billable_quantity(price, quantity)
    if price.get("billing_scheme") != "tiered":
        return q * _dec(price.get("unit_amount_decimal"))
    tiers = tiers or []
    if price.get("tiers_mode") == "volume":
        for tier in tiers:
            if tier.get("up_to") is None or q <= Decimal(tier["up_to"]):
                return q * _dec(tier.get("unit_amount_decimal")) + _dec(tier.get("flat_amount_decimal"))
        return Decimal(0)
    total, lower = Decimal(0), Decimal(0)
    for i, tier in enumerate(tiers):
        upper = None if tier.get("up_to") is None else Decimal(tier["up_to"])
        in_tier = (q if upper is None else min(q, upper)) - lower
        if in_tier > 0 or (i == 0 and q == 0):
            total += max(in_tier, Decimal(0)) * _dec(tier.get("unit_amount_decimal"))
            total += _dec(tier.get("flat_amount_decimal"))
        if upper is None or q <= upper:
            break
        lower = upper
    return total


def round_cents(amount: Decimal) -> int:
    return int(amount.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def line_amount(price: dict, tiers: list[dict] | None, quantity: Decimal) -> int:
    return round_cents(exact_amount(price, tiers, quantity))

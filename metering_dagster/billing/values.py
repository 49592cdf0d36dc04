"""Exact decimals in and out of Stripe.

Out: Stripe takes decimal amounts and meter event values as strings; `decimal_str` writes a
Decimal in plain notation (never `1E+3`, never a float on the way).

In: Stripe returns a meter event summary's `aggregated_value` as a JSON number, which the SDK
parses into a Python float. `decimal_from_json_number` turns it back with `Decimal(repr(x))`:
`repr` of a float is the shortest decimal string that round-trips to the same float, and a
binary double holds 15 significant decimal digits without loss (DBL_DIG = 15). So for any
decimal value of at most 15 significant digits (the limit that the landing checks enforce on
every event value), the float nearest to it reprs as exactly that decimal, and the Decimal we
build is the value Stripe meant, not the float's binary expansion (which `Decimal(x)` would
give, e.g. 0.1 -> 0.1000000000000000055511151231257827...).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any


def decimal_str(value: Decimal | int) -> str:
    """A Decimal as Stripe's decimal strings: plain notation, no exponent, no trailing zeros."""
    text = format(Decimal(value).normalize(), "f")
    return "0" if text in ("-0", "") else text


def decimal_from_json_number(value: Any) -> Decimal | None:
    """A JSON number (int, float, or an already exact Decimal/string) as an exact Decimal."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError("not a number")
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(str(value))


def metadata_of(obj: Any) -> dict[str, str]:
    """A Stripe object's (or its JSON's) metadata as a plain dict (StripeObject is no dict in SDK 16)."""
    meta = obj.get("metadata") if isinstance(obj, dict) else getattr(obj, "metadata", None)
    if meta is None:
        return {}
    return meta.to_dict() if hasattr(meta, "to_dict") else dict(meta)

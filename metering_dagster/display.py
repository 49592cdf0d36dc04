"""How money and quantities are shown to people: one place, so every command reads the same.

Money is held in the currency's smallest unit (Stripe's `amount`, an integer) and shown with its currency and
the currency's decimals; quantities are exact Decimals shown without trailing zeros. Nothing here is used for
arithmetic: these are the last step before a terminal, a page or a log line.
"""

from __future__ import annotations

from decimal import Decimal

# Stripe's zero-decimal currencies: the amount is already in whole units (https://docs.stripe.com/currencies).
ZERO_DECIMAL_CURRENCIES = frozenset("bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split())


def currency_decimals(currency: str) -> int:
    return 0 if currency.lower() in ZERO_DECIMAL_CURRENCIES else 2


def money(amount: int | Decimal | None, currency: str, *, signed: bool = False) -> str:
    """`93459, "usd"` -> `934.59 USD`; `None` -> `-`. `signed` shows a plus sign on a gain (`+1.50 USD`)."""
    if amount is None:
        return "-"
    places = currency_decimals(currency)
    value = Decimal(amount).scaleb(-places)
    text = f"{value:+,.{places}f}" if signed else f"{value:,.{places}f}"
    return f"{text} {currency.upper()}"


def quantity(value: int | Decimal | str | None, *, grouped: bool = True) -> str:
    """`Decimal("353882.000000000000")` -> `353,882`; `0.1000` -> `0.1`; `None` -> `-`.

    `grouped=False` gives the plain text (`353882`) for files another program reads (CSV, JSON).
    """
    if value is None:
        return "-"
    number = Decimal(value)
    if number == 0:
        return "0"
    number = number.normalize()
    text = f"{number:,f}" if grouped else f"{number:f}"
    return text


def count(value: int, noun: str, plural: str | None = None) -> str:
    """`1, "event"` -> `1 event`; `2, "event"` -> `2 events` (never "1 events")."""
    word = noun if value == 1 else (plural or noun + "s")
    return f"{value:,} {word}"

"""Money and quantities as people read them: currency and its decimals, no trailing zeros."""

from decimal import Decimal

from metering_dagster.display import count, money, quantity


def test_money_has_its_currency_and_the_currencys_decimals():
    assert money(93459, "usd") == "934.59 USD"
    assert money(-150, "eur") == "-1.50 EUR"
    assert money(150, "usd", signed=True) == "+1.50 USD"
    assert money(123456789, "usd") == "1,234,567.89 USD"
    assert money(1500, "jpy") == "1,500 JPY"  # a zero-decimal currency: the amount is already in yen
    assert money(None, "usd") == "-"


def test_quantities_lose_trailing_zeros_and_never_an_exponent():
    assert quantity(Decimal("353882.000000000000")) == "353,882"
    assert quantity(Decimal("353882.000000000000"), grouped=False) == "353882"
    assert quantity(Decimal("0.1000")) == "0.1"
    assert quantity(Decimal("1E+3")) == "1,000"
    assert quantity(Decimal("-0.000")) == "0"
    assert quantity(Decimal("0.000000000001")) == "0.000000000001"
    assert quantity(None) == "-"


def test_counts_agree_with_their_noun():
    assert count(1, "event") == "1 event"
    assert count(0, "event") == "0 events"
    assert count(1234, "duplicate") == "1,234 duplicates"

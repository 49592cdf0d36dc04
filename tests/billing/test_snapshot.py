"""Stripe's view copied into stripe_view.*: summaries per period, invoice lines mapped to our meters."""

from __future__ import annotations

from decimal import Decimal

import pytest

from metering_dagster.billing.clock import ClockError, advance_test_clock
from metering_dagster.billing.snapshot import snapshot_stripe_view
from metering_dagster.billing.upload import report_usage
from metering_dagster.billing.values import decimal_from_json_number, decimal_str

from .conftest import needs_emulator, set_usage, utc


@pytest.mark.parametrize("text", ["0.1", "1500.25", "123456789012.345", "0.000000000001", "999999999999999"])
def test_json_number_round_trip_is_exact(text):
    assert decimal_from_json_number(float(text)) == Decimal(text)
    assert decimal_from_json_number(int(Decimal(text))) == int(Decimal(text))


def test_decimal_str_is_plain():
    assert decimal_str(Decimal("1E+3")) == "1000"
    assert decimal_str(Decimal("0.0500")) == "0.05"
    assert decimal_str(Decimal("-0")) == "0"


@needs_emulator
def test_snapshot_after_the_period_closes(stripe_conn, contract, con):
    client = stripe_conn.client
    advance_test_clock(client, con, contract, utc("2026-10-25T00:00:00Z"))
    set_usage(
        con,
        [
            (
                "cust_a",
                "input_tokens",
                "2026-10-01T00:00:00Z",
                "2026-11-01T00:00:00Z",
                "1500.5",
                "2026-10-20T10:00:00Z",
            ),
            ("cust_a", "api_calls", "2026-10-01T00:00:00Z", "2026-11-01T00:00:00Z", "250", "2026-10-20T10:00:00Z"),
            ("cust_a", "storage_gb", "2026-10-01T00:00:00Z", "2026-11-01T00:00:00Z", "2", "2026-10-20T10:00:00Z"),
        ],
    )
    assert report_usage(client, con, contract).failed == 0
    advance_test_clock(client, con, contract, utc("2026-11-01T02:00:00Z"))  # past period end + 1h grace

    result = snapshot_stripe_view(client, con, contract)
    # The final invoice's lines give Stripe's quantity per meter: no meter event summary needed.
    assert result.usage_summaries == 0

    lines = con.execute(
        """SELECT meter, invoice_status, quantity, amount_cents, epoch(period_start)::BIGINT
           FROM stripe_view.invoice_lines WHERE customer_id = 'cust_a' AND invoice_status <> 'preview'
             AND period_start = '2026-10-01T00:00:00Z'::TIMESTAMPTZ ORDER BY meter"""
    ).fetchall()
    by_meter = {m: (status, q, amount) for m, status, q, amount, _ in lines}
    assert set(by_meter) == {"api_calls", "input_tokens", "storage_gb"}
    assert {m: q for m, (_, q, _) in by_meter.items()} == {
        "input_tokens": Decimal("1500.5"),
        "api_calls": 250,
        "storage_gb": 2,
    }
    # graduated: 1000 * 0.5 + 100 flat + 500.5 * 0.25 = 725.125 -> 725; package: ceil(250/100) * 25 = 75; 2 * 12.5 = 25
    assert by_meter["input_tokens"][2] == 725
    assert by_meter["api_calls"][2] == 75
    assert by_meter["storage_gb"][2] == 25
    assert all(status != "draft" for status, _, _ in by_meter.values())
    assert result.previews == 0  # no usage in the periods under way: no upcoming invoice to read


@needs_emulator
def test_clock_refuses_live_and_going_back(stripe_conn, contract, con):
    from dataclasses import replace

    with pytest.raises(ClockError):
        advance_test_clock(stripe_conn.client, con, replace(contract, environment="live"), utc("2026-11-01T00:00:00Z"))
    advance_test_clock(stripe_conn.client, con, contract, utc("2026-10-10T00:00:00Z"))
    with pytest.raises(ClockError):
        advance_test_clock(stripe_conn.client, con, contract, utc("2026-10-05T00:00:00Z"))


@needs_emulator
def test_snapshot_reads_only_customers_whose_stripe_view_changed(stripe_conn, contract, con):
    from metering_dagster.billing.retry import STATS

    client = stripe_conn.client
    advance_test_clock(client, con, contract, utc("2026-10-25T00:00:00Z"))
    usage = [
        ("cust_a", "input_tokens", "2026-10-01T00:00:00Z", "2026-11-01T00:00:00Z", "1500.5", "2026-10-20T10:00:00Z"),
        ("cust_b", "api_calls", "2026-10-15T00:00:00Z", "2026-11-15T00:00:00Z", "-40", "2026-10-20T10:00:00Z"),
    ]
    set_usage(con, usage)
    assert report_usage(client, con, contract).failed == 0
    first = snapshot_stripe_view(client, con, contract)
    assert (first.customers_read, first.customers_carried) == (2, 0)
    # cust_b's total is negative: its preview line bills 0, so the summary is read to see it exactly
    assert con.execute("SELECT customer_id, meter, stripe_quantity FROM stripe_view.usage_summaries").fetchall() == [
        ("cust_b", "api_calls", Decimal("-40"))
    ]

    before = STATS.requests
    second = snapshot_stripe_view(client, con, contract)
    assert (second.customers_read, second.customers_carried) == (0, 2)  # nothing sent, nothing changed
    assert STATS.requests - before == 1  # Stripe's clock, to see whether a period ended

    set_usage(con, [usage[0][:4] + ("1600.5", "2026-10-21T10:00:00Z"), usage[1]])
    assert report_usage(client, con, contract).failed == 0
    third = snapshot_stripe_view(client, con, contract)
    assert (third.customers_read, third.customers_carried) == (1, 1)
    preview = con.execute(
        """SELECT quantity FROM stripe_view.invoice_lines
           WHERE customer_id = 'cust_a' AND meter = 'input_tokens' AND invoice_status = 'preview'"""
    ).fetchall()
    assert preview == [(Decimal("1600.5"),)]
    # the rows of a customer that was not read are kept, not dropped
    assert con.execute("SELECT count(*) FROM stripe_view.invoice_lines WHERE customer_id = 'cust_b'").fetchone()[0] > 0

    full = snapshot_stripe_view(client, con, contract, full=True)
    assert full.customers_read == 2

    advance_test_clock(client, con, contract, utc("2026-11-01T02:00:00Z"))  # cust_a's period ended
    assert snapshot_stripe_view(client, con, contract).customers_read == 1

"""The outbox's planning, without Stripe: deltas, `last` values, clamping, deterministic identifiers."""

from __future__ import annotations

from decimal import Decimal

from metering_dagster.billing import ledger

from .conftest import set_usage, utc

OCT = ("2026-10-01T00:00:00Z", "2026-11-01T00:00:00Z")


def test_identifiers_are_deterministic_and_short():
    a = ledger.event_identifier("test", "cust_a", "input_tokens", utc(OCT[0]), 1)
    assert a == ledger.event_identifier("test", "cust_a", "input_tokens", utc(OCT[0]), 1)
    assert a != ledger.event_identifier("test", "cust_a", "input_tokens", utc(OCT[0]), 2)
    assert len(a) <= 100


def test_sum_rows_carry_deltas_and_pending_rows_count(contract, con):
    set_usage(con, [("cust_a", "input_tokens", *OCT, "10.5", "2026-10-03T00:00:00Z")])
    first = ledger.write_pending(con, contract)
    assert [(r.seq, r.value) for r in first] == [(1, Decimal("10.5"))]
    assert ledger.write_pending(con, contract) == []  # pending, unsent: already accounted for
    set_usage(con, [("cust_a", "input_tokens", *OCT, "7", "2026-10-04T00:00:00Z")])
    (correction,) = ledger.write_pending(con, contract)
    assert (correction.seq, correction.value, correction.quantity_after) == (2, Decimal("-3.5"), 7)


def test_last_rows_clamp_into_the_period_and_skip_zero(contract, con):
    set_usage(
        con,
        [
            ("cust_a", "storage_gb", *OCT, "4", "2026-09-12T00:00:00Z"),  # last_ever carried from before the period
            ("cust_b", "storage_gb", "2026-10-15T00:00:00Z", "2026-11-15T00:00:00Z", "0", None),
        ],
    )
    (row,) = ledger.write_pending(con, contract)
    assert row.customer_id == "cust_a" and row.event_timestamp == utc(OCT[0])
    assert ledger.write_pending(con, contract) == []


def test_withheld_and_unknown_are_skipped(contract, con):
    set_usage(
        con,
        [
            ("cust_a", "input_tokens", *OCT, "1", "2026-10-03T00:00:00Z"),
            ("cust_b", "input_tokens", *OCT, "1", "2026-10-03T00:00:00Z"),
            ("cust_zz", "input_tokens", *OCT, "1", "2026-10-03T00:00:00Z"),
            ("cust_a", "not_a_meter", *OCT, "1", "2026-10-03T00:00:00Z"),
        ],
    )
    rows = ledger.write_pending(con, contract, withheld_customers=frozenset({"cust_b"}))
    assert [(r.customer_id, r.meter) for r in rows] == [("cust_a", "input_tokens")]

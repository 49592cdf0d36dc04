"""The blocking Great Expectations gate validates what the upload will send, not the whole history."""

from __future__ import annotations

from metering_dagster.contract import write_contract_tables
from metering_dagster.quality.suites import validate_usage_upload
from metering_dagster.schema import ensure_billing_tables

from .conftest import set_usage

PERIOD = ("2026-10-01T00:00:00Z", "2026-11-01T00:00:00Z")


def test_the_gate_fails_on_a_row_to_send_and_skips_rows_already_sent(contract, con):
    write_contract_tables(con, contract)
    set_usage(
        con,
        [
            ("cust_a", "input_tokens", *PERIOD, "1500.5", "2026-10-20T10:00:00Z"),
            # 17 significant digits: Stripe would refuse the meter event
            ("cust_b", "input_tokens", *PERIOD, "1234567890.1234567", "2026-10-20T10:00:00Z"),
        ],
    )
    first = validate_usage_upload(con, contract)
    assert not first.success and first.rows == 2 and first.failing_customers == ["cust_b"]

    ensure_billing_tables(con)  # cust_a's row is in the outbox with this very quantity: already sent
    con.execute(
        """INSERT INTO ops.stripe_ledger VALUES ('id-1', 'cust_a', 'input_tokens', ?::TIMESTAMPTZ, ?::TIMESTAMPTZ, 1,
               'sum', 1500.5, 1500.5, now(), 'sent', 1, NULL, NULL, now(), now())""",
        list(PERIOD),
    )
    second = validate_usage_upload(con, contract)
    assert second.rows == 1 and second.failing_customers == ["cust_b"]

    set_usage(con, [("cust_a", "input_tokens", *PERIOD, "1600.5", "2026-10-21T10:00:00Z")])  # cust_a changed
    third = validate_usage_upload(con, contract)
    assert third.success and third.rows == 1

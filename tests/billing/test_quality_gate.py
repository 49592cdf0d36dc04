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


def test_the_suites_import_great_expectations_in_a_process_started_with_python_c(tmp_path):
    """With pyspark installed (the Spark target), Great Expectations imports Spark Connect, whose import ends a
    `python -c` process with exit status 0 and no word (it takes the process for pyspark's own doctests). The bench
    measures runs in such processes: the suites must import GE without it."""
    import subprocess
    import sys

    code = (
        "from metering_dagster.quality.suites import great_expectations\n"
        "print('suites can validate with Great Expectations', great_expectations().__version__)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "suites can validate with Great Expectations" in done.stdout, done.stderr

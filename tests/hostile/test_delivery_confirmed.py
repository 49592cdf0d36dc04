"""Delivery confirmed by Stripe: its asynchronous rejections read back, identifiers that a rebuilt ledger
cannot collide with, a lost warehouse that starts from what Stripe holds, dead letters re-sent by the
upload, and the check that names what was not delivered.

The real stripe SDK over HTTP against the emulator, a real DuckDB file; the emulator validates stream
events after answering 202 and reports the refused ones as v2 events, as Stripe does.
"""

from __future__ import annotations

from decimal import Decimal

import dagster as dg
import duckdb
import pytest

from metering_dagster.billing import error_reports, ledger
from metering_dagster.billing.clock import advance_test_clock
from metering_dagster.billing.objects import sync_stripe_objects
from metering_dagster.billing.upload import report_usage, send_pending
from metering_dagster.defs.delivery.checks import DELIVERY_CHECK, evaluate_delivery
from metering_dagster.schema import ensure_billing_tables
from tests.billing.conftest import (  # noqa: F401
    con,
    contract,
    needs_emulator,
    set_usage,
    settings,
    stripe_conn,
    utc,
)
from tests.billing.test_upload import stripe_quantity
from tests.e2e.test_metering_run import metering, user_env  # noqa: F401
from tests.faults.conftest import chaos, chaos_client  # noqa: F401

pytestmark = needs_emulator

OCT_A = ("2026-10-01T00:00:00Z", "2026-11-01T00:00:00Z")
OCT_B = ("2026-10-15T00:00:00Z", "2026-11-15T00:00:00Z")
SEP_B = ("2026-09-15T00:00:00Z", "2026-10-15T00:00:00Z")
STREAM = "/v2/billing/meter_event_stream"
TOO_PRECISE = "1234567890.123456789"  # 19 significant digits: Stripe takes 15


def _ready(client, contract, con):  # noqa: F811
    """Objects synced and the test clock on 2026-10-25, so October's usage is sendable."""
    sync_stripe_objects(client, contract, con)
    advance_test_clock(client, con, contract, utc("2026-10-25T00:00:00Z"))


@pytest.fixture
def ready(stripe_conn, contract, con):  # noqa: F811
    _ready(stripe_conn.client, contract, con)
    return stripe_conn


def ledger_rows(con, customer: str) -> list[tuple]:  # noqa: F811  (a connection, not the fixture)
    return con.execute(
        """SELECT meter, seq, status, rejected_code FROM ops.stripe_ledger WHERE customer_id = ? AND kind = 'event'
           ORDER BY meter, seq""",
        [customer],
    ).fetchall()


def test_a_lost_warehouse_starts_from_what_stripe_holds_and_nothing_is_doubled(ready, contract, con):  # noqa: F811
    client = ready.client
    set_usage(
        con,
        [
            ("cust_a", "input_tokens", *OCT_A, "1500.25", "2026-10-20T10:00:00Z"),
            ("cust_a", "storage_gb", *OCT_A, "5.5", "2026-10-20T10:00:00Z"),
            ("cust_b", "api_calls", *OCT_B, "7", "2026-10-16T00:00:00Z"),
        ],
    )
    assert report_usage(client, con, contract).events_sent == 3

    # The warehouse is lost with its ledger and Stripe mapping; the marts are rebuilt from the raw logs,
    # with more data: one total grows, the `last` value changes, one is as before, one key is new.
    con.execute("DROP SCHEMA ops CASCADE")
    con.execute("DROP SCHEMA stripe_view CASCADE")
    rebuilt = [
        ("cust_a", "input_tokens", *OCT_A, "1600.35", "2026-10-21T10:00:00Z"),
        ("cust_a", "storage_gb", *OCT_A, "4", "2026-10-20T10:00:00Z"),
        ("cust_b", "api_calls", *OCT_B, "7", "2026-10-16T00:00:00Z"),
        ("cust_b", "input_tokens", *OCT_B, "3", "2026-10-22T00:00:00Z"),
    ]
    set_usage(con, rebuilt)
    sync_stripe_objects(client, contract, con)
    result = report_usage(client, con, contract)

    for customer, meter, start, end, quantity, _ in rebuilt:
        assert stripe_quantity(ready, con, customer, meter, start, end) == Decimal(quantity), (customer, meter)
    assert result.baselines >= 3 and result.events_sent == 3  # +100.1 tokens, storage 4, cust_b's 3 tokens
    assert not result.rejected and evaluate_delivery(con).passed
    assert report_usage(client, con, contract).events_sent == 0


def test_a_lost_warehouse_sends_nothing_for_a_key_whose_stripe_usage_cannot_be_read(
    chaos, chaos_client, stripe_conn, contract, con
):  # noqa: F811
    _ready(chaos_client, contract, con)
    usage = [
        ("cust_a", "input_tokens", *OCT_A, "8", "2026-10-20T10:00:00Z"),
        ("cust_b", "input_tokens", *OCT_B, "9", "2026-10-20T10:00:00Z"),
    ]
    set_usage(con, usage)
    report_usage(chaos_client, con, contract)
    con.execute("DROP SCHEMA ops CASCADE")
    sync_stripe_objects(chaos_client, contract, con)
    cust_b = con.execute("SELECT stripe_customer_id FROM ops.stripe_customers WHERE customer_id = 'cust_b'").fetchone()[
        0
    ]

    chaos.force_containing[f"customer={cust_b}"] = "404"  # its meter event summaries cannot be read
    blind = report_usage(chaos_client, con, contract)
    assert blind.events_sent == 0 and any("cust_b/input_tokens" in e for e in blind.errors)
    check = evaluate_delivery(con)
    assert not check.passed and check.metadata["customers"].value == "cust_b"

    del chaos.force_containing[f"customer={cust_b}"]
    set_usage(con, [usage[0], ("cust_b", "input_tokens", *OCT_B, "11", "2026-10-21T10:00:00Z")])
    report_usage(chaos_client, con, contract)
    assert evaluate_delivery(con).passed
    assert stripe_quantity(stripe_conn, con, "cust_a", "input_tokens", *OCT_A) == 8
    assert stripe_quantity(stripe_conn, con, "cust_b", "input_tokens", *OCT_B) == 11


def test_a_customer_deleted_in_stripe_is_held_named_and_the_others_billed(ready, contract, con, monkeypatch):  # noqa: F811
    client = ready.client
    set_usage(con, [("cust_b", "api_calls", *OCT_B, "3", "2026-10-20T10:00:00Z")])
    report_usage(client, con, contract)  # delivered while its Stripe customer existed
    gone = con.execute("SELECT stripe_customer_id FROM ops.stripe_customers WHERE customer_id = 'cust_b'").fetchone()[0]
    client.v1.customers.delete(gone)
    set_usage(
        con,
        [
            ("cust_a", "input_tokens", *OCT_A, "10", "2026-10-20T10:00:00Z"),
            ("cust_b", "input_tokens", *OCT_B, "20", "2026-10-20T10:00:00Z"),
            ("cust_b", "api_calls", *OCT_B, "5", "2026-10-21T10:00:00Z"),
        ],
    )

    result = report_usage(client, con, contract)
    assert stripe_quantity(ready, con, "cust_a", "input_tokens", *OCT_A) == 10
    # what it sent in the hour before Stripe's rejection is not counted as delivered either
    assert ledger_rows(con, "cust_b") == [
        ("api_calls", 1, "pending", "meter_event_customer_not_found"),
        ("api_calls", 2, "pending", "meter_event_customer_not_found"),
        ("input_tokens", 1, "pending", "meter_event_customer_not_found"),
    ]
    assert result.held_customers == ["cust_b"] and "cust_b" in result.summary()
    check = evaluate_delivery(con)
    assert not check.passed and check.metadata["customers"].value == "cust_b"
    assert "meter_event_customer_not_found" in check.description and gone in check.description

    again = report_usage(client, con, contract)  # nothing is sent for it meanwhile
    assert again.requests == 0 and again.held_customers == ["cust_b"]

    # Once the object sync gives it a new Stripe customer, all its usage is delivered there, what the
    # deleted one had included.
    monkeypatch.setenv("METERING_STRIPE_VERIFY_HOURS", "0")
    sync_stripe_objects(client, contract, con)
    assert (
        con.execute("SELECT stripe_customer_id FROM ops.stripe_customers WHERE customer_id = 'cust_b'").fetchone()[0]
        != gone
    )
    healed = report_usage(client, con, contract)
    assert healed.held_customers == [] and evaluate_delivery(con).passed
    assert stripe_quantity(ready, con, "cust_b", "input_tokens", *OCT_B) == 20
    assert stripe_quantity(ready, con, "cust_b", "api_calls", *OCT_B) == 5
    assert ledger_rows(con, "cust_b") == [
        ("api_calls", 1, "replaced", None),
        ("api_calls", 2, "replaced", None),
        ("api_calls", 3, "sent", None),
        ("input_tokens", 1, "replaced", None),
        ("input_tokens", 2, "sent", None),
    ]


def test_a_value_stripe_refuses_goes_back_to_pending_with_the_reason(ready, contract, con):  # noqa: F811
    client = ready.client
    set_usage(
        con,
        [
            ("cust_a", "input_tokens", *OCT_A, TOO_PRECISE, "2026-10-20T10:00:00Z"),
            ("cust_b", "input_tokens", *OCT_B, "5", "2026-10-20T10:00:00Z"),
        ],
    )
    result = report_usage(client, con, contract)
    assert result.events_sent == 2  # the stream took both; Stripe refused one afterwards
    assert ledger_rows(con, "cust_a") == [("input_tokens", 1, "pending", "meter_event_value_too_many_digits")]
    error = con.execute("SELECT last_error FROM ops.stripe_ledger WHERE customer_id = 'cust_a'").fetchone()[0]
    assert "15 significant digits" in error
    assert [(r.customer_id, r.code) for r in result.rejected] == [("cust_a", "meter_event_value_too_many_digits")]
    assert stripe_quantity(ready, con, "cust_b", "input_tokens", *OCT_B) == 5
    check = evaluate_delivery(con)
    assert not check.passed and check.metadata["customers"].value == "cust_a"

    # Corrected data: the next row carries the whole quantity and replaces the refused one.
    set_usage(
        con,
        [
            ("cust_a", "input_tokens", *OCT_A, "1234567890.12", "2026-10-21T10:00:00Z"),
            ("cust_b", "input_tokens", *OCT_B, "5", "2026-10-20T10:00:00Z"),
        ],
    )
    fixed = report_usage(client, con, contract)
    assert not fixed.rejected and evaluate_delivery(con).passed
    assert stripe_quantity(ready, con, "cust_a", "input_tokens", *OCT_A) == Decimal("1234567890.12")
    assert ledger_rows(con, "cust_a") == [
        ("input_tokens", 1, "replaced", "meter_event_value_too_many_digits"),
        ("input_tokens", 2, "sent", None),
    ]


def test_rejections_a_report_counts_but_does_not_name_are_found_by_stripes_totals(ready, contract, con, monkeypatch):  # noqa: F811
    monkeypatch.setattr("stripe_emulator.resources.events.SAMPLES", 1)  # a report names one error per code
    set_usage(
        con,
        [
            ("cust_a", "input_tokens", *OCT_A, TOO_PRECISE, "2026-10-20T10:00:00Z"),
            ("cust_b", "input_tokens", *SEP_B, TOO_PRECISE, "2026-10-01T10:00:00Z"),
            ("cust_b", "input_tokens", *OCT_B, "5", "2026-10-20T10:00:00Z"),
        ],
    )
    result = report_usage(ready.client, con, contract)
    assert ledger_rows(con, "cust_a") == [("input_tokens", 1, "pending", "meter_event_value_too_many_digits")]
    assert con.execute(
        "SELECT period_start::DATE::VARCHAR, status, rejected_code FROM ops.stripe_ledger WHERE customer_id = 'cust_b' ORDER BY 1"
    ).fetchall() == [("2026-09-15", "pending", "meter_event_value_too_many_digits"), ("2026-10-15", "sent", None)]
    assert len(result.rejected) == 2 and "does not name" in result.rejected[1].message


def test_each_report_is_applied_once_and_again_after_a_crash_before_it_was_recorded(ready, contract, con, monkeypatch):  # noqa: F811
    set_usage(con, [("cust_a", "input_tokens", *OCT_A, TOO_PRECISE, "2026-10-20T10:00:00Z")])
    ledger.write_pending(con, contract)
    send_pending(ready.client, con)  # sent; Stripe refuses it afterwards

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed while applying the report")

    real = ledger.mark_rejected
    monkeypatch.setattr(ledger, "mark_rejected", killed)
    with pytest.raises(KeyboardInterrupt):
        error_reports.read_error_reports(ready.client, con)
    assert ledger_rows(con, "cust_a") == [("input_tokens", 1, "sent", None)]
    assert con.execute("SELECT count(*) FROM ops.stripe_error_reports").fetchone()[0] == 0

    monkeypatch.setattr(ledger, "mark_rejected", real)
    first = error_reports.read_error_reports(ready.client, con)
    assert first.reports_read == 1 and [r.code for r in first.rejected] == ["meter_event_value_too_many_digits"]
    again = error_reports.read_error_reports(ready.client, con)
    assert again.reports_read == 0 and again.rejected == []


def test_a_sent_row_is_confirmed_once_stripe_had_time_to_reject_it(ready, contract, con, monkeypatch):  # noqa: F811
    set_usage(con, [("cust_a", "input_tokens", *OCT_A, "7", "2026-10-20T10:00:00Z")])
    result = report_usage(ready.client, con, contract)
    assert result.awaiting_confirmation == 1  # no run waits for Stripe's validation
    monkeypatch.setattr(error_reports, "CONFIRM_AFTER_SECONDS", 0)
    assert error_reports.read_error_reports(ready.client, con).confirmed == 1
    assert con.execute("SELECT confirmed_at IS NOT NULL FROM ops.stripe_ledger").fetchone()[0]


def test_identifiers_cannot_collide_with_a_rebuilt_ledgers_and_old_rows_keep_theirs(contract, con):  # noqa: F811
    set_usage(con, [("cust_a", "input_tokens", *OCT_A, "10", "2026-10-20T10:00:00Z")])
    # a pending row as the version before incarnations wrote it (a crash before it was sent)
    ensure_billing_tables(con)
    legacy = ledger.event_identifier("test", "cust_a", "input_tokens", utc(OCT_A[0]), 1)
    con.execute(
        """INSERT INTO ops.stripe_ledger (identifier, customer_id, meter, period_start, period_end, seq, stripe_formula,
               value, quantity_after, event_timestamp, status, attempts, created_at)
           VALUES (?, 'cust_a', 'input_tokens', ?::TIMESTAMPTZ, ?::TIMESTAMPTZ, 1, 'sum', 4, 4, ?::TIMESTAMPTZ,
                   'pending', 0, now())""",
        [legacy, *OCT_A, "2026-10-19T00:00:00Z"],
    )
    assert [e.identifier for e in ledger.pending_events(con)] == [legacy]  # re-sent as it was

    incarnation = ledger.ensure_ledger(con)
    (row,) = ledger.write_pending(con, contract)
    assert (row.seq, row.value) == (2, 6)
    assert row.identifier == ledger.event_identifier("test", "cust_a", "input_tokens", utc(OCT_A[0]), 2, incarnation)
    assert row.identifier != ledger.event_identifier("test", "cust_a", "input_tokens", utc(OCT_A[0]), 2)

    # a ledger built again in a new warehouse plans the same key and seq under other identifiers
    other = duckdb.connect()
    other.execute("""CREATE SCHEMA marts; CREATE TABLE marts.fct_usage_by_period (customer_id VARCHAR, meter VARCHAR,
        period_start TIMESTAMPTZ, period_end TIMESTAMPTZ, quantity DECIMAL(38, 12), event_count BIGINT,
        last_event_at TIMESTAMPTZ)""")
    set_usage(other, [("cust_a", "input_tokens", *OCT_A, "10", "2026-10-20T10:00:00Z")])
    (fresh,) = ledger.write_pending(other, contract)
    assert ledger.ensure_ledger(other) != incarnation
    assert fresh.seq == 1 and fresh.identifier not in {legacy, row.identifier}


def test_the_upload_resends_dead_letters_and_its_check_fails_until_delivered(
    chaos, chaos_client, stripe_conn, contract, con, settings, monkeypatch
):  # noqa: F811
    from metering_dagster.billing.retry import RetryPolicy
    from metering_dagster.defs.billing.assets import stripe_usage_report
    from metering_dagster.defs.billing.resources import stripe_resource
    from metering_dagster.defs.delivery.checks import upload_checks
    from metering_dagster.defs.resources import MeteringResource

    _ready(chaos_client, contract, con)
    con.execute("""CREATE TABLE marts.fct_invoice_lines_expected (customer_id VARCHAR, meter VARCHAR,
        period_start TIMESTAMPTZ, period_end TIMESTAMPTZ, quantity DECIMAL(38, 12), amount_problem VARCHAR)""")
    set_usage(
        con,
        [
            ("cust_a", "input_tokens", *OCT_A, "15", "2026-10-20T10:00:00Z"),
            ("cust_b", "api_calls", *OCT_B, "4", "2026-10-20T10:00:00Z"),
        ],
    )
    monkeypatch.setattr("metering_dagster.billing.retry.DEFAULT_POLICY", RetryPolicy(max_attempts=2, base_seconds=0.01))
    monkeypatch.setenv("METERING_STATE_DIR", str(settings.state_dir))
    monkeypatch.setenv("METERING_CONTRACT", str(settings.contract_path))
    monkeypatch.setenv("STRIPE_API_KEY", "sk_test_dead_letters")
    monkeypatch.setenv("STRIPE_API_BASE", chaos.url)

    def upload() -> tuple[dg.ExecuteInProcessResult, dg.AssetCheckEvaluation]:
        """The upload asset and its checks, as the metering job runs them."""
        run = dg.materialize(
            [stripe_usage_report, *upload_checks],
            selection=[stripe_usage_report.key],
            resources={"metering": MeteringResource(), "stripe": stripe_resource()},
        )
        (check,) = [e for e in run.get_asset_check_evaluations() if e.check_name == DELIVERY_CHECK]
        return run, check

    chaos.force[STREAM] = ["500", None]  # Stripe down for the stream: both rows parked
    run, check = upload()
    assert run.success and not check.passed
    assert check.metadata["customers"].value == "cust_a, cust_b"
    assert "dead letter" in check.description

    del chaos.force[STREAM]
    run, check = upload()  # the upload itself re-sends them, no schedule needed
    upload_metadata = run.asset_materializations_for_node("stripe_usage_report")[0].metadata
    assert upload_metadata["dead_letters_retried"].value == 2 and upload_metadata["dead_letters_open"].value == 0
    assert check.passed
    assert stripe_quantity(stripe_conn, con, "cust_a", "input_tokens", *OCT_A) == 15
    assert stripe_quantity(stripe_conn, con, "cust_b", "api_calls", *OCT_B) == 4


LATE_LINES = [
    {
        "event_id": "late-1",
        "timestamp": "2026-10-30T10:00:00Z",
        "customer_id": "cus_acme",
        "action": "model_inference",
        "metadata": {"model": "gpt-4o", "input_tokens": 1234},
    },
    {
        "event_id": "late-2",
        "timestamp": "2026-10-30T12:00:00Z",
        "customer_id": "cus_umbrella",
        "action": "api_request",
        "metadata": {"endpoint": "/v1/chat"},
    },
]


@pytest.mark.slow
def test_metering_run_after_the_warehouse_is_lost_rebuilds_it_and_stripe_ends_equal(user_env, metering_env):  # noqa: F811
    """`metering run`, the warehouse deleted, more logs arrive, `metering run` again: every customer,
    meter and period of the rebuilt warehouse equals Stripe's meter event summary, nothing doubled."""
    import json

    from stripe_emulator import EmulatorServer
    from tests.faults.runs import stripe_vs_ours

    state, raw = metering_env["state"], metering_env["raw"]
    assert metering("clock", "advance", "--to", "2026-11-01T00:30:00Z", env=user_env).returncode == 0
    first = metering("run", env=user_env)
    assert first.returncode == 0, first.stdout + first.stderr

    for lost in state.glob("*.duckdb*"):
        lost.unlink()
    (raw / "late.jsonl").write_text("".join(json.dumps(line) + "\n" for line in LATE_LINES))
    rebuilt = metering("run", env=user_env)
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert "24 customer-meter-periods started from what Stripe already held" in rebuilt.stdout, rebuilt.stdout

    with EmulatorServer(str(state / "stripe_emulator.sqlite"), port=0) as emulator:
        compared, differences = stripe_vs_ours(emulator.url, state)
    assert compared == 24 and differences == []

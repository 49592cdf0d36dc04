"""Re-sends that stay safe after Stripe's identifier window.

Stripe keeps a meter event identifier unique "within a rolling period of at least 24 hours". The
emulator is told to forget identifiers after 24 hours on the customer's clock, and the test clock is
moved past that: a dead letter whose answer was lost after Stripe counted it must not be counted
again. The real stripe SDK over HTTP (through the chaos proxy, which can drop an answer after the
request took effect) against the emulator, a real DuckDB file.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
import stripe

from metering_dagster.billing.clock import advance_test_clock
from metering_dagster.billing.retry import RetryPolicy
from metering_dagster.billing.upload import report_usage
from metering_dagster.defs.delivery.checks import evaluate_delivery
from stripe_emulator import EmulatorServer
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
from tests.emulator.conftest import DAY, T0, Builder, make_client
from tests.faults.conftest import chaos, chaos_client  # noqa: F401
from tests.hostile.test_delivery_confirmed import (
    OCT_A,
    OCT_B,
    STREAM,
    TOO_PRECISE,
    _ready,
)

pytestmark = needs_emulator

STRIPE_WINDOW = 24 * 3600
SENT_AT = "2026-10-25T00:00:00Z"  # Stripe's clock when the first attempt is made (_ready)
AFTER_WINDOW = "2026-10-26T02:00:00Z"  # 26 h later: Stripe no longer knows the identifier
INSIDE_WINDOW = "2026-10-25T12:00:00Z"  # 12 h later: it still does


@pytest.fixture
def stripe_forgets(stripe_conn, chaos_client, contract, con, monkeypatch):  # noqa: F811
    """The emulator forgets identifiers after 24 h; one attempt per request, so a lost answer parks its batch."""
    stripe_conn.server.settings.identifier_window_seconds = STRIPE_WINDOW
    monkeypatch.setattr("metering_dagster.billing.retry.DEFAULT_POLICY", RetryPolicy(max_attempts=1))
    _ready(chaos_client, contract, con)
    return stripe_conn


def ledger_rows(con, customer: str, meter: str) -> list[tuple]:  # noqa: F811  (a connection, not the fixture)
    return con.execute(
        """SELECT seq, kind, status, value::VARCHAR, coalesce(last_error, '') FROM ops.stripe_ledger
           WHERE customer_id = ? AND meter = ? ORDER BY seq""",
        [customer, meter],
    ).fetchall()


def answer_lost_then_wait(chaos, client, contract, con, usage: list[tuple], until: str) -> None:  # noqa: F811
    """Upload `usage` while Stripe counts each batch and its answer is lost (parked), then move Stripe's clock."""
    set_usage(con, usage)
    chaos.force[STREAM] = ["drop", None]
    report_usage(client, con, contract)
    del chaos.force[STREAM]
    advance_test_clock(client, con, contract, utc(until))


def test_the_emulator_forgets_an_identifier_after_its_window_on_the_customers_clock(tmp_path):
    with (
        EmulatorServer(tmp_path / "window.sqlite", identifier_window_seconds=STRIPE_WINDOW) as forgetting,
        EmulatorServer(tmp_path / "default.sqlite") as keeping,
    ):
        for srv, counted in ((forgetting, 2), (keeping, 1)):
            build = Builder(make_client(srv.url))
            clock = build.clock(T0)
            customer = build.customer(clock)
            meter = build.meter()
            build.event(meter, customer, 3, T0, identifier="same")
            build.advance(clock, T0 + STRIPE_WINDOW - 60)
            with pytest.raises(stripe.InvalidRequestError, match="already exists"):
                build.event(meter, customer, 3, T0, identifier="same")
            build.advance(clock, T0 + STRIPE_WINDOW)
            if counted == 1:
                with pytest.raises(stripe.InvalidRequestError, match="already exists"):
                    build.event(meter, customer, 3, T0, identifier="same")
            else:
                build.event(meter, customer, 3, T0, identifier="same")  # taken again: Stripe counts it twice
            summaries = build.c.v1.billing.meters.event_summaries.list(
                meter.id, {"customer": customer.id, "start_time": T0, "end_time": T0 + DAY}
            )
            assert sum(Decimal(str(s.aggregated_value)) for s in summaries.data) == 3 * counted


def test_a_dead_letter_stripe_counted_is_not_counted_again_after_the_window(
    stripe_forgets, chaos, chaos_client, contract, con
):  # noqa: F811
    set_usage(con, [("cust_a", "input_tokens", *OCT_A, "10", "2026-10-20T10:00:00Z")])
    chaos.force[STREAM] = ["drop", None]  # Stripe counts the batch, its answer is lost
    lost = report_usage(chaos_client, con, contract)
    assert lost.dead_lettered == 1 and stripe_quantity(stripe_forgets, con, "cust_a", "input_tokens", *OCT_A) == 10

    # Stripe is down for a while longer; meanwhile 5 more tokens arrive, and their first attempt fails too.
    chaos.force[STREAM] = ["500", None]
    set_usage(con, [("cust_a", "input_tokens", *OCT_A, "15", "2026-10-21T10:00:00Z")])
    down = report_usage(chaos_client, con, contract)
    assert down.dead_letters_open == 2

    del chaos.force[STREAM]
    advance_test_clock(chaos_client, con, contract, utc(AFTER_WINDOW))
    result = report_usage(chaos_client, con, contract)

    assert stripe_quantity(stripe_forgets, con, "cust_a", "input_tokens", *OCT_A) == 15
    rows = ledger_rows(con, "cust_a", "input_tokens")
    assert [r[:4] for r in rows] == [
        (1, "event", "replaced", "10.000000000000"),
        (2, "event", "replaced", "5.000000000000"),
        (3, "summary", "sent", "10.000000000000"),  # what Stripe held of them
        (4, "event", "sent", "5.000000000000"),  # only what it lacked, under a new identifier
    ]
    assert "Stripe's summary holds 10" in rows[0][4] and "delivered by summary" in rows[2][4]
    assert result.events_sent == 1 and result.untrusted.replaced == 2 and result.dead_letters_open == 0
    assert evaluate_delivery(con).passed
    assert report_usage(chaos_client, con, contract).events_sent == 0


def test_a_dead_letter_stripe_holds_in_full_is_delivered_by_summary_and_nothing_is_sent(
    stripe_forgets, chaos, chaos_client, contract, con
):  # noqa: F811
    answer_lost_then_wait(
        chaos, chaos_client, contract, con, [("cust_b", "api_calls", *OCT_B, "7", "2026-10-20T10:00:00Z")], AFTER_WINDOW
    )

    result = report_usage(chaos_client, con, contract)
    assert stripe_quantity(stripe_forgets, con, "cust_b", "api_calls", *OCT_B) == 7
    assert result.events_sent == 0 and result.untrusted.delivered_by_summary == 1
    (row,) = ledger_rows(con, "cust_b", "api_calls")
    assert row[:3] == (1, "event", "sent") and row[4].startswith("delivered by summary")
    assert result.dead_letters_open == 0 and evaluate_delivery(con).passed


def test_inside_the_window_the_identifier_is_trusted_and_answered_as_a_duplicate(
    stripe_forgets, chaos, chaos_client, contract, con
):  # noqa: F811
    answer_lost_then_wait(
        chaos,
        chaos_client,
        contract,
        con,
        [("cust_a", "input_tokens", *OCT_A, "10", "2026-10-20T10:00:00Z")],
        INSIDE_WINDOW,
    )

    summaries_before = chaos.requests_to(_summaries_path(con, "input_tokens"))
    result = report_usage(chaos_client, con, contract)
    assert stripe_quantity(stripe_forgets, con, "cust_a", "input_tokens", *OCT_A) == 10
    assert result.dead_letters_retried == 1 and result.dead_letters_open == 0
    assert result.untrusted.keys_checked == 0  # no summary read: the identifier did it
    assert chaos.requests_to(_summaries_path(con, "input_tokens")) == summaries_before
    assert [r[:3] for r in ledger_rows(con, "cust_a", "input_tokens")] == [(1, "event", "sent")]
    # Stripe took the re-send as the duplicate it is (its error report names the identifier)
    assert con.execute("SELECT sum(rows_delivered) FROM ops.stripe_error_reports").fetchone()[0] == 1


def test_a_last_meter_is_sent_again_only_where_stripes_last_value_differs(
    stripe_forgets, chaos, chaos_client, contract, con
):  # noqa: F811
    cust_a = ("cust_a", "storage_gb", *OCT_A, "5.5", "2026-10-20T10:00:00Z")
    cust_b = ("cust_b", "storage_gb", *OCT_B, "4", "2026-10-20T10:00:00Z")
    set_usage(con, [cust_a])
    chaos.force[STREAM] = ["drop", None]  # cust_a's value reaches Stripe, the answer does not
    report_usage(chaos_client, con, contract)
    chaos.force[STREAM] = ["500", None]  # cust_b's never reaches Stripe
    set_usage(con, [cust_a, cust_b])
    assert report_usage(chaos_client, con, contract).dead_letters_open == 2
    del chaos.force[STREAM]
    advance_test_clock(chaos_client, con, contract, utc(AFTER_WINDOW))

    result = report_usage(chaos_client, con, contract)
    assert stripe_quantity(stripe_forgets, con, "cust_a", "storage_gb", *OCT_A) == Decimal("5.5")
    assert stripe_quantity(stripe_forgets, con, "cust_b", "storage_gb", *OCT_B) == 4
    assert result.events_sent == 1  # cust_b's value only
    assert [r[:3] for r in ledger_rows(con, "cust_a", "storage_gb")] == [(1, "event", "sent")]
    assert [r[:4] for r in ledger_rows(con, "cust_b", "storage_gb")] == [
        (1, "event", "replaced", "4.000000000000"),
        (2, "event", "sent", "4.000000000000"),
    ]
    assert result.dead_letters_open == 0 and evaluate_delivery(con).passed


def _summaries_path(con, meter: str) -> str:  # noqa: F811
    stripe_meter = con.execute("SELECT stripe_meter_id FROM ops.stripe_meters WHERE meter = ?", [meter]).fetchone()[0]
    return f"/v1/billing/meters/{stripe_meter}/event_summaries"


def test_rows_a_report_did_not_name_are_not_counted_twice_when_read_after_the_window(
    stripe_forgets, chaos_client, contract, con, monkeypatch
):  # noqa: F811
    """Path of the unnamed rejections: a report counts more errors than it names, the key's rows sent in its
    window go back to pending, Stripe's totals decide; here the report is only read a day later."""
    from metering_dagster.billing import error_reports

    monkeypatch.setattr("stripe_emulator.resources.events.SAMPLES", 1)  # a report names one error per code
    set_usage(con, [("cust_b", "input_tokens", *OCT_B, "5", "2026-10-20T10:00:00Z")])
    report_usage(chaos_client, con, contract)  # Stripe takes 5
    with monkeypatch.context() as run_dies_after_sending:  # the reports of this upload are not read
        run_dies_after_sending.setattr(error_reports, "read_error_reports", lambda *_: error_reports.ReportsResult())
        set_usage(
            con,
            [
                ("cust_a", "input_tokens", *OCT_A, TOO_PRECISE, "2026-10-20T10:00:00Z"),  # refused, named
                (
                    "cust_b",
                    "input_tokens",
                    *OCT_B,
                    "10000.000000000001",
                    "2026-10-21T10:00:00Z",
                ),  # 16 digits: refused, unnamed
            ],
        )
        report_usage(chaos_client, con, contract)
    advance_test_clock(chaos_client, con, contract, utc(AFTER_WINDOW))

    result = report_usage(chaos_client, con, contract)
    assert stripe_quantity(stripe_forgets, con, "cust_b", "input_tokens", *OCT_B) == 5  # not 10
    assert result.untrusted.replaced >= 2
    assert [r[:3] for r in ledger_rows(con, "cust_b", "input_tokens")][:3] == [
        (1, "event", "replaced"),
        (2, "event", "replaced"),
        (3, "summary", "sent"),
    ]

    set_usage(
        con,
        [  # the data is corrected: the refused difference is replaced by what Stripe can take
            ("cust_a", "input_tokens", *OCT_A, "12", "2026-10-21T10:00:00Z"),
            ("cust_b", "input_tokens", *OCT_B, "10000", "2026-10-21T10:00:00Z"),
        ],
    )
    report_usage(chaos_client, con, contract)
    assert stripe_quantity(stripe_forgets, con, "cust_b", "input_tokens", *OCT_B) == 10000
    assert stripe_quantity(stripe_forgets, con, "cust_a", "input_tokens", *OCT_A) == 12
    assert evaluate_delivery(con).passed

"""Usage reported through the outbox: deltas, nothing twice, crashes, `last` meters, withheld customers."""

from __future__ import annotations

from decimal import Decimal

import pytest

from metering_dagster.billing import ledger, upload
from metering_dagster.billing.clock import advance_test_clock, current_clock_time
from metering_dagster.billing.objects import sync_stripe_objects
from metering_dagster.billing.upload import report_usage

from .conftest import needs_emulator, set_usage, utc

pytestmark = needs_emulator

OCT_A = ("2026-10-01T00:00:00Z", "2026-11-01T00:00:00Z")
OCT_B = ("2026-10-15T00:00:00Z", "2026-11-15T00:00:00Z")


def stripe_quantity(conn, con, customer: str, meter: str, start: str, end: str) -> Decimal:
    cus, mtr = con.execute(
        "SELECT c.stripe_customer_id, m.stripe_meter_id FROM ops.stripe_customers c, ops.stripe_meters m "
        "WHERE c.customer_id = ? AND m.meter = ?",
        [customer, meter],
    ).fetchone()
    params = {"customer": cus, "start_time": int(utc(start).timestamp()), "end_time": int(utc(end).timestamp())}
    total = Decimal(0)
    for s in conn.client.v1.billing.meters.event_summaries.list(mtr, params).auto_paging_iter():
        total += (
            Decimal(repr(s.aggregated_value)) if isinstance(s.aggregated_value, float) else Decimal(s.aggregated_value)
        )
    return total


@pytest.fixture
def ready(stripe_conn, contract, con):
    """Objects synced and the test clock on 2026-10-25, so October's usage is sendable."""
    sync_stripe_objects(stripe_conn.client, contract, con)
    advance_test_clock(stripe_conn.client, con, contract, utc("2026-10-25T00:00:00Z"))
    return stripe_conn


def test_upload_sends_deltas_and_a_rerun_sends_nothing(ready, contract, con):
    client = ready.client
    set_usage(
        con,
        [
            ("cust_a", "input_tokens", *OCT_A, "1500.25", "2026-10-20T10:00:00Z"),
            ("cust_a", "api_calls", *OCT_A, "7", "2026-10-20T11:00:00Z"),
            ("cust_b", "input_tokens", *OCT_B, "0.1", "2026-10-16T00:00:00Z"),
        ],
    )
    first = report_usage(client, con, contract)
    assert (first.events_written, first.events_sent, first.requests, first.failed) == (3, 3, 1, 0)
    assert stripe_quantity(ready, con, "cust_a", "input_tokens", *OCT_A) == Decimal("1500.25")
    assert stripe_quantity(ready, con, "cust_b", "input_tokens", *OCT_B) == Decimal("0.1")

    again = report_usage(client, con, contract)
    assert (again.events_written, again.events_sent, again.requests) == (0, 0, 0)

    set_usage(
        con,
        [
            ("cust_a", "input_tokens", *OCT_A, "1600.35", "2026-10-21T10:00:00Z"),
            ("cust_a", "api_calls", *OCT_A, "7", "2026-10-20T11:00:00Z"),
            ("cust_b", "input_tokens", *OCT_B, "0.3", "2026-10-17T00:00:00Z"),
        ],
    )
    delta = report_usage(client, con, contract)
    assert (delta.events_written, delta.events_sent) == (2, 2)
    values = dict(
        con.execute(
            "SELECT customer_id, value FROM ops.stripe_ledger WHERE meter = 'input_tokens' AND seq = 2"
        ).fetchall()
    )
    assert values == {"cust_a": Decimal("100.1"), "cust_b": Decimal("0.2")}
    assert stripe_quantity(ready, con, "cust_a", "input_tokens", *OCT_A) == Decimal("1600.35")
    assert stripe_quantity(ready, con, "cust_b", "input_tokens", *OCT_B) == Decimal("0.3")
    assert stripe_quantity(ready, con, "cust_a", "api_calls", *OCT_A) == 7


def test_crash_between_ledger_write_and_send_is_counted_once(ready, contract, con, monkeypatch):
    client = ready.client
    set_usage(con, [("cust_a", "input_tokens", *OCT_A, "42", "2026-10-20T10:00:00Z")])

    # crash 1: rows written, nothing sent
    written = ledger.write_pending(con, contract)
    ids = [r.identifier for r in written]
    # crash 2: Stripe accepted the request but the run died before marking the rows sent
    real_mark_sent = ledger.mark_sent

    def die(*args, **kwargs):
        raise KeyboardInterrupt("killed after send")

    monkeypatch.setattr(ledger, "mark_sent", die)
    with pytest.raises(KeyboardInterrupt):
        report_usage(client, con, contract)
    monkeypatch.setattr(ledger, "mark_sent", real_mark_sent)
    assert con.execute("SELECT count(*) FROM ops.stripe_ledger WHERE status = 'pending'").fetchone()[0] == 1

    rerun = report_usage(client, con, contract)
    assert rerun.events_written == 0 and rerun.events_sent == 1
    rows = con.execute("SELECT identifier, status FROM ops.stripe_ledger").fetchall()
    assert rows == [(ids[0], "sent")]
    assert stripe_quantity(ready, con, "cust_a", "input_tokens", *OCT_A) == 42
    assert report_usage(client, con, contract).events_sent == 0


def test_last_meter_gets_the_current_value(ready, contract, con):
    client = ready.client
    set_usage(con, [("cust_a", "storage_gb", *OCT_A, "5.5", "2026-10-20T10:00:00Z")])
    report_usage(client, con, contract)
    assert stripe_quantity(ready, con, "cust_a", "storage_gb", *OCT_A) == Decimal("5.5")
    # the period's value goes down (e.g. last_ever corrected); same last_event_at
    set_usage(con, [("cust_a", "storage_gb", *OCT_A, "3", "2026-10-20T10:00:00Z")])
    result = report_usage(client, con, contract)
    assert result.events_sent == 1
    assert stripe_quantity(ready, con, "cust_a", "storage_gb", *OCT_A) == 3
    ts = [
        r[0]
        for r in con.execute(
            "SELECT epoch(event_timestamp) FROM ops.stripe_ledger WHERE meter = 'storage_gb' ORDER BY seq"
        ).fetchall()
    ]
    assert ts[1] > ts[0]


def test_withheld_customers_are_not_sent(ready, contract, con):
    client = ready.client
    set_usage(
        con,
        [
            ("cust_a", "input_tokens", *OCT_A, "10", "2026-10-20T10:00:00Z"),
            ("cust_b", "input_tokens", *OCT_B, "20", "2026-10-20T10:00:00Z"),
        ],
    )
    result = report_usage(client, con, contract, withheld_customers=frozenset({"cust_b"}))
    assert result.withheld_customers == 1 and result.events_sent == 1
    assert con.execute("SELECT count(*) FROM ops.stripe_ledger WHERE customer_id = 'cust_b'").fetchone()[0] == 0
    assert stripe_quantity(ready, con, "cust_b", "input_tokens", *OCT_B) == 0

    released = report_usage(client, con, contract)
    assert released.events_sent == 1
    assert stripe_quantity(ready, con, "cust_b", "input_tokens", *OCT_B) == 20


def test_event_outside_stripes_time_window_stays_pending_with_reason(ready, contract, con):
    client = ready.client
    assert current_clock_time(client, con, contract) == utc("2026-10-25T00:00:00Z")
    set_usage(con, [("cust_a", "input_tokens", *OCT_A, "9", "2026-10-30T00:00:00Z")])
    result = report_usage(client, con, contract)
    assert result.deferred == 1 and result.events_sent == 0
    status, error = con.execute("SELECT status, last_error FROM ops.stripe_ledger").fetchone()
    assert status == "pending" and error.startswith("timestamp_in_future")

    advance_test_clock(client, con, contract, utc("2026-10-31T00:00:00Z"))
    later = report_usage(client, con, contract)
    assert later.events_sent == 1 and later.deferred == 0
    assert stripe_quantity(ready, con, "cust_a", "input_tokens", *OCT_A) == 9


def test_requests_carry_at_most_100_events(ready, contract, con, monkeypatch):
    monkeypatch.setattr(upload, "MAX_EVENTS_PER_REQUEST", 2)
    set_usage(
        con,
        [
            ("cust_a", "input_tokens", *OCT_A, "1", "2026-10-20T10:00:00Z"),
            ("cust_a", "api_calls", *OCT_A, "2", "2026-10-20T10:00:00Z"),
            ("cust_a", "storage_gb", *OCT_A, "3", "2026-10-20T10:00:00Z"),
        ],
    )
    result = report_usage(ready.client, con, contract)
    assert (result.events_sent, result.requests) == (3, 2)


def test_the_ledger_is_written_once_before_and_once_after_the_requests(ready, contract, con, monkeypatch):
    """Each warehouse write commits (a disk flush): the first tries of all batches are one write before the first
    request, the rows Stripe took one write per thousand, not two writes per request."""
    monkeypatch.setattr(upload, "MAX_EVENTS_PER_REQUEST", 2)
    set_usage(
        con,
        [
            ("cust_a", "input_tokens", *OCT_A, "1", "2026-10-20T10:00:00Z"),
            ("cust_a", "api_calls", *OCT_A, "2", "2026-10-20T10:00:00Z"),
            ("cust_a", "storage_gb", *OCT_A, "3", "2026-10-20T10:00:00Z"),
        ],
    )
    tried_writes = []
    real_mark_tried = ledger.mark_tried

    def counted(con, stripe_times):
        tried_writes.append(len(stripe_times))
        real_mark_tried(con, stripe_times)

    monkeypatch.setattr(ledger, "mark_tried", counted)
    sent_writes = []
    real_mark_sent = ledger.mark_sent

    def counted_sent(con, identifiers, note=None):
        if identifiers:  # an empty list writes nothing
            sent_writes.append(len(identifiers))
        real_mark_sent(con, identifiers, note)

    monkeypatch.setattr(ledger, "mark_sent", counted_sent)
    real_send = upload._send
    untried_at_first_send = []

    def send(client, con, *args, **kwargs):
        untried_at_first_send.append(
            con.execute("SELECT count(*) FROM ops.stripe_ledger WHERE first_sent_at IS NULL").fetchone()[0]
        )
        return real_send(client, con, *args, **kwargs)

    monkeypatch.setattr(upload, "_send", send)
    result = report_usage(ready.client, con, contract)
    assert (result.events_sent, result.requests) == (3, 2)
    assert tried_writes == [3] and sent_writes == [3]
    assert untried_at_first_send[0] == 0
    assert con.execute("SELECT count(*) FROM ops.stripe_ledger WHERE status = 'sent'").fetchone()[0] == 3

"""Delivery under faults: backoff with jitter, Retry-After, stripe-should-retry, the dead-letter table
and its retry, nothing lost and nothing counted twice (the emulator behind a chaos proxy)."""

from __future__ import annotations

import time
from datetime import UTC
from decimal import Decimal

import pytest

from metering_dagster.billing import deadletter
from metering_dagster.billing.objects import sync_stripe_objects
from metering_dagster.billing.retry import STATS, RetryPolicy, should_retry
from metering_dagster.billing.upload import report_usage, retry_dead_letters
from metering_dagster.defs.delivery.checks import evaluate_dead_letters
from metering_dagster.locks import RunLockBusy, UploadLeaseHeld, run_lock, upload_lease
from tests.billing.conftest import set_usage

STREAM = "/v2/billing/meter_event_stream"
USAGE = [
    ("cust_a", "input_tokens", "2026-10-01", "2026-11-01", "1500", "2026-10-03T00:00:00Z"),
    ("cust_a", "api_calls", "2026-10-01", "2026-11-01", "7", "2026-10-03T00:00:00Z"),
    ("cust_b", "storage_gb", "2026-10-15", "2026-11-15", "3.5", "2026-10-20T00:00:00Z"),
]


def test_backoff_is_exponential_with_full_jitter_and_honours_retry_after():
    policy = RetryPolicy(base_seconds=0.5, cap_seconds=4)
    assert [policy.backoff(n, rng=lambda: 1.0) for n in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert policy.backoff(3, rng=lambda: 0.0) == 0.0  # full jitter: anywhere in [0, ceiling]
    assert policy.backoff(1, retry_after=3, rng=lambda: 0.5) == 3  # Retry-After is a floor
    assert policy.backoff(1, retry_after=3600, rng=lambda: 0.5) == policy.max_retry_after
    assert should_retry(429, {}, False) and should_retry(503, {}, False) and should_retry(None, None, True)
    assert not should_retry(500, {"Stripe-Should-Retry": "false"}, False)
    assert should_retry(400, {"stripe-should-retry": "true"}, False) and not should_retry(400, {}, False)


def _prepare(client, con, contract):
    """Objects synced, the test clock on 2026-10-25 so that October's usage is sendable."""
    from datetime import datetime

    from metering_dagster.billing.clock import advance_test_clock

    sync_stripe_objects(client, contract, con)
    advance_test_clock(client, con, contract, datetime(2026, 10, 25, tzinfo=UTC))
    set_usage(con, USAGE)


def stripe_totals(client, con, contract) -> dict[tuple[str, str], Decimal]:
    """Stripe's meter event summaries per (customer, meter) over the periods of USAGE (read directly)."""
    meters = {m.event_name: m.id for m in client.v1.billing.meters.list({"limit": 100}).data}
    customers = dict(con.execute("SELECT customer_id, stripe_customer_id FROM ops.stripe_customers").fetchall())
    totals = {}
    for customer, meter, start, end, _, _ in USAGE:
        from datetime import datetime

        t0 = int(datetime.fromisoformat(start).replace(tzinfo=UTC).timestamp())
        t1 = int(datetime.fromisoformat(end).replace(tzinfo=UTC).timestamp())
        summaries = client.v1.billing.meters.event_summaries.list(
            meters[meter], {"customer": customers[customer], "start_time": t0, "end_time": t1}
        )
        totals[(customer, meter)] = sum((Decimal(str(s.aggregated_value)) for s in summaries.data), Decimal(0))
    return totals


EXPECTED = {(c, m): Decimal(q) for c, m, _, _, q, _ in USAGE}


def test_429_with_retry_after_is_waited_out_and_counted(chaos, chaos_client, con, contract):
    _prepare(chaos_client, con, contract)
    chaos.force[STREAM] = ["429", 2]
    chaos.retry_after = "0.3"
    STATS.reset()
    started = time.monotonic()
    result = report_usage(chaos_client, con, contract)
    assert time.monotonic() - started >= 0.6  # two Retry-After waits
    assert result.failed == 0 and result.events_sent == 3
    assert STATS.faults.get("429") == 2 and STATS.retries >= 2
    assert stripe_totals(chaos_client, con, contract) == EXPECTED


def test_should_retry_false_is_not_retried_and_parks_the_rows(chaos, chaos_client, con, contract):
    _prepare(chaos_client, con, contract)
    chaos.force[STREAM] = ["400-no-retry", None]
    before = chaos.requests_to(STREAM)
    result = report_usage(chaos_client, con, contract)
    # one batch refused, then each row alone (to find the culprit): no retries of any request
    assert chaos.requests_to(STREAM) - before == 1 + 3
    assert chaos.figures()["retries"] == 0
    assert result.dead_lettered == 3 and result.dead_letters_open == 3
    assert con.execute("SELECT count(*) FROM ops.stripe_ledger WHERE status = 'pending'").fetchone()[0] == 3


def test_stripe_down_parks_everything_then_the_retry_delivers_each_row_once(
    chaos, chaos_client, con, contract, monkeypatch
):
    _prepare(chaos_client, con, contract)
    monkeypatch.setattr("metering_dagster.billing.retry.DEFAULT_POLICY", RetryPolicy(max_attempts=3, base_seconds=0.01))
    # Stripe takes every batch but the answer never comes: the worst case for double counting.
    chaos.force[STREAM] = ["drop", None]
    first = report_usage(chaos_client, con, contract)
    assert first.dead_lettered == 3 and first.events_sent == 0
    letters = deadletter.open_letters(con)
    assert {d.meter for d in letters} == {"input_tokens", "api_calls", "storage_gb"}
    assert evaluate_dead_letters(con, max_age=-1).passed is False  # older than the set age: the check fails
    assert evaluate_dead_letters(con, max_age=3600).passed is True

    # the next upload re-sends the parked rows first (Stripe still down: parked again) and plans nothing new
    again = report_usage(chaos_client, con, contract)
    assert (again.events_written, again.dead_letters_retried, again.requests) == (0, 3, 1)
    assert again.dead_letters_open == 3 and again.events_sent == 0

    del chaos.force[STREAM]
    retried = retry_dead_letters(chaos_client, con)
    assert retried.events_sent == 3 and retried.dead_letters_open == 0
    assert con.execute("SELECT count(*) FROM ops.stripe_ledger WHERE status = 'pending'").fetchone()[0] == 0
    assert stripe_totals(chaos_client, con, contract) == EXPECTED  # delivered during the drops, not doubled
    assert retry_dead_letters(chaos_client, con).requests == 0
    assert evaluate_dead_letters(con, max_age=-1).passed is True


@pytest.mark.slow  # a fuzz or soak under random faults: out of make test-fast
def test_500s_429s_and_drops_at_random_lose_nothing_and_double_nothing(tmp_path, con, contract):
    from metering_dagster.billing.client import EMULATOR_KEY, _client
    from stripe_emulator import EmulatorServer
    from tests.faults.chaos import ChaosProxy

    with (
        EmulatorServer(
            str(tmp_path / "flaky.sqlite"), port=0, fail_rate=0.15, drop_after_commit_rate=0.05, seed=3
        ) as flaky,
        ChaosProxy(flaky.url, rate_limited_rate=0.05, retry_after="0.05", seed=9) as chaos,
    ):
        client = _client(EMULATOR_KEY, chaos.url)
        _prepare(client, con, contract)
        report_usage(client, con, contract)
        for _ in range(20):
            if not deadletter.open_identifiers(con):
                break
            retry_dead_letters(client, con)
        assert stripe_totals(client, con, contract) == EXPECTED
        assert chaos.figures()["faults_met"] > 0


def test_a_second_run_stops_and_says_who_holds_the_lock(tmp_path):
    messages = []
    with run_lock(tmp_path):
        with pytest.raises(RunLockBusy, match=r"stopped: another metering run \(pid \d+"):
            with run_lock(tmp_path, wait_seconds=0.6, say=messages.append):
                pass
    assert messages and messages[0].startswith("waiting: another metering run")
    with run_lock(tmp_path):  # released with its holder
        pass


def test_the_upload_lease_refuses_a_live_holder_and_takes_over_a_dead_one(con):
    con.execute("CREATE SCHEMA IF NOT EXISTS ops")
    with upload_lease(con, "first"):
        pass
    import subprocess
    import sys

    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        con.execute(
            "INSERT INTO ops.upload_lease VALUES ('stripe_upload', 'other run', ?, ?, now())",
            [alive.pid, __import__("socket").gethostname()],
        )
        with pytest.raises(UploadLeaseHeld, match="other run"):
            with upload_lease(con, "second"):
                pass
    finally:
        alive.kill()
        alive.wait()
    with upload_lease(con, "third"):  # the holder died: taken over
        assert con.execute("SELECT holder FROM ops.upload_lease").fetchone()[0] == "third"
    assert con.execute("SELECT count(*) FROM ops.upload_lease").fetchone()[0] == 0


def test_a_reader_holding_the_warehouse_makes_a_writer_wait_not_fail(tmp_path):
    """DuckDB locks its file against readers too: a run opening the warehouse while a reader
    (a summary, `metering explain`) has it open waits for it instead of failing its step."""
    import subprocess
    import sys

    from metering_dagster.warehouse import WarehouseHeld, connect

    path = tmp_path / "warehouse.duckdb"
    connect(path).close()
    reader = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1], read_only=True); print('open', flush=True);"
            " time.sleep(2); c.close()",
            str(path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert reader.stdout.readline().strip() == "open"
        with pytest.raises(WarehouseHeld, match=f"process {reader.pid}"):  # at 0 s: at once, naming the reader
            connect(path, wait_seconds=0).close()
        started = time.monotonic()
        con = connect(path, wait_seconds=30)
        assert time.monotonic() - started > 0.5  # it waited for the reader, then opened for writing
        con.execute("CREATE TABLE ops.written AS SELECT 1 AS x")
        con.close()
    finally:
        reader.wait(timeout=30)

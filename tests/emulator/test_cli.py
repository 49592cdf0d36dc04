"""The emulator as users start it: `python -m stripe_emulator`, restarts, several processes on one file."""

from __future__ import annotations

import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import stripe

from .conftest import T0, Builder, make_client

ROOT = Path(__file__).resolve().parents[2]


def spawn(state, *flags):
    proc = subprocess.Popen(
        [sys.executable, "-m", "stripe_emulator", "--port", "0", "--state", str(state), *flags],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = proc.stdout.readline().strip()
    assert url.startswith("http://127.0.0.1:"), proc.stderr.read()
    return proc, url


def stop(proc):
    proc.terminate()
    proc.wait(timeout=10)


def test_subprocess_restart_keeps_state(tmp_path):
    state = tmp_path / "state.sqlite"
    proc, url = spawn(state, "--grace-period-seconds", "60", "--seed", "1")
    try:
        c = make_client(url)
        b = Builder(c)
        clock, cust, meter, price, sub = b.metered_subscription()
        b.event(meter, cust, 7, T0 + 5)
        with pytest.raises(stripe.AuthenticationError):
            make_client(url, "sk_live_x").v1.customers.list()
    finally:
        stop(proc)
    proc, url = spawn(state)
    try:
        c = make_client(url)
        assert c.v1.customers.retrieve(cust.id).test_clock == clock.id
        summary = c.v1.billing.meters.event_summaries.list(
            meter.id, {"customer": cust.id, "start_time": T0, "end_time": T0 + 3600}
        ).data[0]
        assert summary.aggregated_value == 7
    finally:
        stop(proc)


def test_two_processes_share_one_file(tmp_path):
    state = tmp_path / "shared.sqlite"
    procs = [spawn(state) for _ in range(2)]
    try:
        admin = make_client(procs[0][1])
        b = Builder(admin)
        clock = b.clock(T0)
        cust, meter = b.customer(clock), b.meter()
        clients = [make_client(url, max_network_retries=3) for _, url in procs]

        def send(i):
            clients[i % 2].v1.billing.meter_events.create(
                {
                    "event_name": meter.event_name,
                    "timestamp": T0,
                    "identifier": uuid.uuid4().hex,
                    "payload": {"stripe_customer_id": cust.id, "value": "1"},
                }
            )

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(send, range(200)))
        for _, url in procs:
            s = (
                make_client(url)
                .v1.billing.meters.event_summaries.list(
                    meter.id, {"customer": cust.id, "start_time": T0, "end_time": T0 + 60}
                )
                .data[0]
            )
            assert s.aggregated_value == 200
    finally:
        for proc, _ in procs:
            stop(proc)


def test_the_emulator_in_a_process_of_its_own(tmp_path):
    """`EmulatorProcess` (what the bench can run the emulator in): served from its own process, its CPU time read
    from the operating system, its state kept when it stops."""
    from stripe_emulator.process import EmulatorProcess

    state = tmp_path / "state.sqlite"
    with EmulatorProcess(state, grace_period_seconds=60) as emulator:
        environment = emulator.environment()
        assert environment["STRIPE_API_BASE"] == emulator.url
        c = make_client(emulator.url, environment["STRIPE_API_KEY"])
        clock, cust, meter, price, sub = Builder(c).metered_subscription()
        Builder(c).event(meter, cust, 7, T0 + 5)
        assert emulator.cpu_seconds() > 0
        pid = emulator.pid
    assert emulator.url is None and not Path(f"/proc/{pid}").exists()
    proc, url = spawn(state)
    try:
        summary = (
            make_client(url)
            .v1.billing.meters.event_summaries.list(
                meter.id, {"customer": cust.id, "start_time": T0, "end_time": T0 + 3600}
            )
            .data[0]
        )
        assert summary.aggregated_value == 7
    finally:
        stop(proc)

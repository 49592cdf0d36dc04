"""`metering run` killed at every dangerous point, two runs at once, and the soak: the pipeline against
the emulator with 10% 500s, 5% 429s and 3% drops after commit, killed mid-upload, then Stripe's meter
event summaries must equal marts.fct_usage_by_period for every customer, meter and period.

Each run is a real subprocess (Dagster, dbt, DuckDB) in its own process group; a kill is a SIGKILL
of that group at a named crash point (tests/faults/crashing_run.py). The Stripe key is a test
key given through the environment, and afterwards nothing the runs wrote may contain it.

Size: METERING_SOAK_EVENTS (default 3000), METERING_SOAK_CUSTOMERS (default 40),
METERING_SOAK_ROUNDS (default 2; each round adds data and is killed mid-upload once).
"""

from __future__ import annotations

import json
import os
import shutil
import time

import pytest

from tests.faults.chaos import ChaosProxy
from tests.faults.runs import SECRET_KEY, Runs, print_figures, query, scan_for, stripe_vs_ours

pytestmark = pytest.mark.slow

CLOCK_AT = "2026-11-01T00:30:00Z"


@pytest.fixture
def stripe_under_faults(tmp_path):
    from stripe_emulator import EmulatorServer

    with (
        EmulatorServer(
            str(tmp_path / "stripe.sqlite"),
            port=0,
            grace_period_seconds=3600,
            fail_rate=0.10,
            drop_after_commit_rate=0.03,
            seed=int(os.environ.get("METERING_SOAK_SEED", "11")),
        ) as emulator,
        ChaosProxy(emulator.url, rate_limited_rate=0.05, retry_after="0.2", seed=7) as proxy,
    ):
        yield emulator, proxy


def _runs(metering_env, proxy) -> Runs:
    env = dict(os.environ, STRIPE_API_KEY=SECRET_KEY, STRIPE_API_BASE=proxy.url, METERING_LOCK_WAIT_SECONDS="0")
    return Runs(env=env)


def _wrong_environment_file(raw, customer: str, action: str, path: str) -> None:
    """Events for the other environment, with values that would show anywhere they leaked."""
    lines = []
    for i in range(5):
        event = {
            "event_id": f"live-{i}",
            "timestamp": "2026-10-10T10:00:00Z",
            "customer_id": customer,
            "action": action,
            "environment": "live",
            "metadata": {},
        }
        target = event
        parts = path.split(".")
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = 10**9
        lines.append(json.dumps(event))
    (raw / "other-environment.jsonl").write_text("\n".join(lines) + "\n")


def _locked(path) -> bool:
    import fcntl

    if not path.exists():
        return False
    with open(path) as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
        return False


def _assert_exact(emulator, state, figures):
    compared, differences = stripe_vs_ours(emulator.url, state)
    figures["customer_meter_periods_compared"] = compared
    figures["differences"] = len(differences)
    assert compared > 0
    assert differences == [], differences[:20]


def test_killed_at_every_point_then_the_next_run_finishes_exactly(metering_env, dbt_manifest, stripe_under_faults):
    emulator, proxy = stripe_under_faults
    state, raw = metering_env["state"], metering_env["raw"]
    shutil.copytree(REPO_DEMO_RAW, raw, dirs_exist_ok=True)
    runs = _runs(metering_env, proxy)
    assert runs.metering("clock", "advance", "--to", CLOCK_AT).returncode == 0

    runs.metering("run", crash="landing:before_commit")
    assert query(state, "select count(*) from raw.landed_files") == [(0,)]  # the landing transaction is gone

    runs.metering("run", crash="dbt:running@30")  # 3 s after landing committed: dbt is building
    assert query(state, "select count(*) from raw.landed_files")[0][0] > 0

    runs.metering("run", crash="upload:after_ledger_write")
    ledger = dict(query(state, "select status, count(*) from ops.stripe_ledger group by 1"))
    assert ledger.get("pending", 0) > 0 and ledger.get("sent", 0) == 0

    runs.metering("run", crash="upload:after_send@1")  # Stripe took the first batch; the ledger never heard
    assert query(state, "select count(*) from ops.stripe_ledger where status = 'sent'") == [(0,)]

    # Two runs at once: the second stops and says why; the first finishes the job.
    first = runs.popen("run")
    deadline = time.time() + 120
    while not _locked(state / "metering.lock"):
        assert time.time() < deadline and first.poll() is None
        time.sleep(0.2)
    second = runs.metering("run")
    assert second.returncode == 1
    assert "stopped: another metering run (pid" in second.stderr, second.stderr
    out, err = first.communicate(timeout=600)
    runs.outputs += [out, err]
    assert first.returncode == 0, out + err
    assert "killed; marked failed" in err  # the dead runs were recovered, their pool slots freed

    figures = {
        "kills_survived": runs.kills,
        **proxy.figures(),
        "dead_letters": query(state, "select count(*) from ops.stripe_dead_letters")[0][0],
    }
    assert query(state, "select count(*) from ops.stripe_ledger where status = 'pending'") == [(0,)]
    _assert_exact(emulator, state, figures)
    assert scan_for(SECRET_KEY, runs.outputs, state) == []
    print_figures("crash recovery", figures)


def test_soak_under_faults_with_kills_mid_upload(metering_env, dbt_manifest, stripe_under_faults, tmp_path):
    from metering_dagster.billing import deadletter
    from metering_dagster.billing.client import _client
    from metering_dagster.billing.upload import retry_dead_letters
    from metering_dagster.commands.bench.generate import bench_contract_yaml, generate_month
    from metering_dagster.contract import load_contract
    from metering_dagster.warehouse import connect

    emulator, proxy = stripe_under_faults
    state, raw, contract_path = metering_env["state"], metering_env["raw"], metering_env["contract"]
    events = int(os.environ.get("METERING_SOAK_EVENTS", "3000"))
    customers = [f"cus_soak_{i:04d}" for i in range(int(os.environ.get("METERING_SOAK_CUSTOMERS", "40")))]
    rounds = int(os.environ.get("METERING_SOAK_ROUNDS", "2"))
    contract_path.write_text(bench_contract_yaml(REPO_DEMO_RAW.parent / "metering.yml", customers))
    contract = load_contract(contract_path)
    sum_meter = next(m for m in contract.meters if m.aggregation == "sum")
    _wrong_environment_file(raw, customers[0], sum_meter.action, sum_meter.value_path)

    runs = _runs(metering_env, proxy)
    started = time.monotonic()
    assert runs.metering("clock", "advance", "--to", CLOCK_AT).returncode == 0
    days = 30 // rounds
    for n in range(rounds):
        generate_month(
            contract,
            customers,
            raw / f"round{n}",
            events // rounds,
            seed=100 + n,
            first_id=n * events,
            start_day=n * days,
            days=days,
        )
        runs.metering("run", crash="upload:after_send@2")  # killed mid-upload, every round
    final = runs.metering("run")
    assert final.returncode == 0, final.stdout + final.stderr

    # The dead-letter retry (what the schedule runs) until nothing is left, bounded.
    con = connect(state / "warehouse.duckdb")
    try:
        client = _client(SECRET_KEY, proxy.url)
        for _ in range(10):
            if not deadletter.open_identifiers(con):
                break
            retry_dead_letters(client, con)
        dead_letters = con.execute("select count(*) from ops.stripe_dead_letters").fetchone()[0]
        still_open = len(deadletter.open_identifiers(con))
        pending = con.execute("select count(*) from ops.stripe_ledger where status = 'pending'").fetchone()[0]
    finally:
        con.close()

    figures = {
        "events": events,
        "customers": len(customers),
        "rounds": rounds,
        **proxy.figures(),
        "dead_letters": dead_letters,
        "dead_letters_open_at_end": still_open,
        "kills_survived": runs.kills,
        "seconds": round(time.monotonic() - started, 1),
    }
    assert (still_open, pending) == (0, 0)
    assert figures["faults_429"] > 0 and figures["faults_500"] > 0 and runs.kills >= 1
    # the other environment's events never reached Stripe: quarantined, and Stripe equals ours exactly
    assert query(state, "select count(*) from marts.rpt_quarantined_events where reason = 'wrong_environment'") == [
        (5,)
    ]
    _assert_exact(emulator, state, figures)
    assert scan_for(SECRET_KEY, runs.outputs, state) == []
    print_figures("soak", figures)


from tests.conftest import DEMO_DIR  # noqa: E402

REPO_DEMO_RAW = DEMO_DIR / "raw"

"""`metering run` and `metering clock advance` as a user runs them: real Dagster, dbt, emulator."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO = REPO_ROOT / "data" / "demo"
METERING = [sys.executable, "-m", "metering_dagster.cli"]

pytestmark = pytest.mark.slow


def metering(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([*METERING, *args], env=env, capture_output=True, text=True, timeout=600, cwd=REPO_ROOT)


@pytest.fixture
def user_env(metering_env, dbt_manifest):
    shutil.copytree(DEMO / "raw", metering_env["raw"], dirs_exist_ok=True)
    return dict(os.environ)


def read(state: Path, sql: str):
    con = duckdb.connect(str(state / "analytics.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_run_uploads_then_reconciles_the_final_invoice_to_the_cent(user_env, metering_env):
    state = metering_env["state"]
    assert metering("clock", "advance", "--to", "2026-11-01T00:30:00Z", env=user_env).returncode == 0

    first = metering("run", env=user_env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "succeeded" in first.stdout
    # progress as it goes, on stderr: plain lines here (not a terminal), a few per step
    progress = first.stderr.splitlines()
    assert "metering run: landing new usage files: landed 3 files, 3,016 lines; done in 0 s" in progress or any(
        line.startswith("metering run: landing new usage files: landed 3 files, 3,016 lines; done in")
        for line in progress
    ), first.stderr
    assert any(
        re.fullmatch(r"metering run: dbt: .*: (\d+) of \1 models built; done in \d+ s", line) for line in progress
    ), first.stderr
    assert any("Stripe: sending meter events: 24 meter events sent; done in" in line for line in progress)
    assert any("4 customers read back; done in" in line for line in progress), first.stderr
    assert progress[-1].startswith("metering run: finished in") and len(progress) < 40, first.stderr

    # Published for analysts; a run was recorded in the Dagster instance.
    assert (state / "analytics.duckdb").exists()
    assert any((state / "dagster_home").iterdir())
    sent_first = read(state, "select count(*) from marts.fct_usage_by_period")[0][0]
    assert sent_first > 0

    again = metering("run", env=user_env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "uploaded        0 meter events sent" in again.stdout, again.stdout

    assert metering("clock", "advance", "--to", "2026-11-01T02:00:00Z", env=user_env).returncode == 0
    final = metering("run", env=user_env)
    assert final.returncode == 0, final.stdout + final.stderr

    statuses = dict(
        read(
            state, "select status, count(*) from marts.rpt_reconciliation where period_start = '2026-10-01' group by 1"
        )
    )
    assert set(statuses) == {"match"}, statuses
    ours, theirs = read(
        state,
        "select sum(local_amount_cents), sum(stripe_amount_cents) from marts.rpt_reconciliation where period_start = '2026-10-01'",
    )[0]
    assert ours == theirs and ours > 0


def test_bad_contract_lists_every_error_and_stops(user_env, metering_env):
    metering_env["contract"].write_text("environment: staging\ncurrency: usd\nmeters: []\ncustomers: []\n")
    result = metering("run", env=user_env)
    assert result.returncode == 3
    assert "environment" in result.stderr and str(metering_env["contract"].name) in result.stderr


def test_analysts_read_the_marts_while_a_run_is_in_progress(user_env, metering_env):
    state = metering_env["state"]
    assert metering("clock", "advance", "--to", "2026-11-01T00:30:00Z", env=user_env).returncode == 0
    assert metering("run", env=user_env).returncode == 0
    expected = read(state, "select count(*) from marts.fct_usage_by_period")[0][0]

    # A second run holds the warehouse for writing; the published copy stays readable throughout.
    (metering_env["raw"] / "more.jsonl").write_text(
        json.dumps(
            {
                "event_id": "more-1",
                "timestamp": "2026-10-20T10:00:00Z",
                "customer_id": "cus_acme",
                "action": "api_request",
                "metadata": {},
            }
        )
        + "\n"
    )
    run = subprocess.Popen(
        [*METERING, "run"], env=user_env, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    reads_during_run = 0
    while run.poll() is None:
        assert read(state, "select count(*) from marts.fct_usage_by_period")[0][0] == expected
        reads_during_run += 1
    output = run.stdout.read()
    assert run.returncode == 0, output
    assert reads_during_run > 0
    calls = read(
        state, "select quantity from marts.fct_usage_by_period where customer_id = 'cus_acme' and meter = 'api_calls'"
    )[0][0]
    assert calls == 194  # 193 in the demo data, one more now

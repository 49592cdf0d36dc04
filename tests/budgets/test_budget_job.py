"""The budget job, the light path from a usage file to the entitlements API: it builds the same budget marts as the
metering job, `metering run --budgets` sends nothing to Stripe yet blocks a customer past its cap, and neither
sensor starts a run while a run of either job is queued or under way."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from metering_dagster.serving.api import create_app
from metering_dagster.settings import Settings
from tests.serving.conftest import TOKEN, Api, run_server

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO = REPO_ROOT / "data" / "demo"
METERING = [sys.executable, "-m", "metering_dagster.cli"]


def _folder(root: Path, raw_from: Path | None = None) -> dict[str, str]:
    """A state folder of its own with the demo contract: the environment of a `metering` command on it."""
    (root / "state" / "dagster_home").mkdir(parents=True)
    shutil.copy(DEMO / "metering.yml", root / "metering.yml")
    if raw_from is None:
        (root / "raw").mkdir()
    else:
        shutil.copytree(raw_from, root / "raw")
    return {
        **os.environ,
        "METERING_STATE_DIR": str(root / "state"),
        "METERING_RAW_DIR": str(root / "raw"),
        "METERING_CONTRACT": str(root / "metering.yml"),
        "DAGSTER_HOME": str(root / "state" / "dagster_home"),
    }


def metering(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([*METERING, *args], env=env, capture_output=True, text=True, timeout=600, cwd=REPO_ROOT)
    assert done.returncode in (0, 4), done.stdout + done.stderr
    return done


def _settings(env: dict[str, str]) -> Settings:
    return Settings(
        state_dir=Path(env["METERING_STATE_DIR"]),
        raw_dir=Path(env["METERING_RAW_DIR"]),
        contract_path=Path(env["METERING_CONTRACT"]),
    )


def _rows(env: dict[str, str], sql: str, params=None) -> list[tuple]:
    con = duckdb.connect(str(Path(env["METERING_STATE_DIR"]) / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def _answers(env: dict[str, str], *paths: str) -> list[dict]:
    """What `metering serve`'s app answers over the folder's published copy."""
    server, thread, base = run_server(create_app(_settings(env), TOKEN))
    try:
        return [Api(base).get(path).body for path in paths]
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _without_as_of(body: dict) -> dict:
    """An answer without `as_of` (when each run looked at the raw folder: its own time) at any depth."""
    if isinstance(body, dict):
        return {k: _without_as_of(v) for k, v in body.items() if k != "as_of"}
    if isinstance(body, list):
        return [_without_as_of(v) for v in body]
    return body


@pytest.mark.slow  # two runs, dbt in each
def test_the_budget_job_builds_the_metering_jobs_budget_marts_and_the_api_answers_the_same(tmp_path, dbt_manifest):
    light = _folder(tmp_path / "light", raw_from=DEMO / "raw")
    full = _folder(tmp_path / "full", raw_from=DEMO / "raw")
    metering(light, "run", "--budgets")
    metering(full, "run")

    for mart in ("fct_budget_status", "fct_entitlements"):
        # every column but as_of, every row; as_of is each run's own reading of the raw folder
        sql = f"select * exclude (as_of) from marts.{mart} order by all"
        built_light, built_full = _rows(light, sql), _rows(full, sql)
        assert built_light == built_full and built_light, mart
        for env in (light, full):
            assert _rows(env, f"select distinct as_of from marts.{mart}") == _rows(
                env, "select max(read_at) from ops.stripe_clock_readings"
            )
    assert ("cus_globex", "block") in _rows(light, "select customer_id, access from marts.fct_entitlements")

    paths = ("/v1/entitlements", "/v1/entitlements/cus_globex", "/v1/entitlements/cus_acme")
    answered_light, answered_full = _answers(light, *paths), _answers(full, *paths)
    assert [_without_as_of(a) for a in answered_light] == [_without_as_of(a) for a in answered_full]
    assert answered_light[1]["access"] == "block" and answered_light[1]["reasons"] == [
        "api_call_cap: 186 of 150 call (124%)"
    ]


def _calls(path: Path, first: int, n: int, day: int) -> None:
    """n API calls of cus_globex (the demo's block budget: 150 calls a month) on 2026-10-<day>."""
    lines = [
        json.dumps(
            {
                "event_id": f"evt_call_{i:05d}",
                "timestamp": f"2026-10-{day:02d}T10:00:{i % 60:02d}Z",
                "customer_id": "cus_globex",
                "action": "api_request",
            }
        )
        for i in range(first, first + n)
    ]
    path.write_text("\n".join(lines) + "\n")


def _sent(env: dict[str, str]) -> tuple[int, int, int]:
    """Ledger rows, ledger rows sent, meter events the emulator (Stripe) holds."""
    ledger = _rows(env, "select count(*), count(*) filter (where status = 'sent') from ops.stripe_ledger")[0]
    stripe = sqlite3.connect(Path(env["METERING_STATE_DIR"]) / "stripe_emulator.sqlite")
    try:
        events = stripe.execute("select count(*) from meter_events").fetchone()[0]
    finally:
        stripe.close()
    return (*ledger, events)


@pytest.mark.slow  # a clock move and two runs
def test_a_budget_run_blocks_the_customer_past_its_cap_and_sends_nothing_to_stripe(tmp_path, dbt_manifest):
    env = _folder(tmp_path)
    raw = Path(env["METERING_RAW_DIR"])
    metering(env, "clock", "advance", "--to", "2026-10-20T00:00:00Z")  # October's usage is Stripe's to take
    _calls(raw / "calls-1.jsonl", 0, 100, 2)
    metering(env, "run")
    before = _sent(env)
    assert before[1] > 0 and before[2] > 0  # the metering job did upload
    assert _answers(env, "/v1/entitlements/cus_globex")[0]["access"] == "allow"  # 100 of 150

    _calls(raw / "calls-2.jsonl", 100, 60, 9)  # 160 of 150
    budget_run = metering(env, "run", "--budgets")

    assert budget_run.returncode == 0, budget_run.stdout + budget_run.stderr
    assert "nothing: a budget run sends nothing to Stripe" in budget_run.stdout
    assert "; 1 customer blocked: cus_globex" in budget_run.stdout  # the budgets row
    assert _sent(env) == before  # no new ledger row, nothing sent, no meter event in Stripe
    globex = _answers(env, "/v1/entitlements/cus_globex")[0]
    assert (globex["access"], globex["reasons"]) == ("block", ["api_call_cap: 160 of 150 call (106.67%)"])


def _run_of(job_name: str, status: dg.DagsterRunStatus) -> dg.DagsterRun:
    """A run of `job_name` in `status`, as the instance records it (a queued run names where its job comes from)."""
    from dagster._core.remote_origin import InProcessCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

    location = InProcessCodeLocationOrigin(LoadableTargetOrigin(module_name="metering_dagster.definitions"))
    origin = RemoteJobOrigin(RemoteRepositoryOrigin(location, "__repository__"), job_name)
    return dg.DagsterRun(job_name=job_name, run_id=str(uuid.uuid4()), status=status, remote_job_origin=origin)


@pytest.fixture
def sensor_env(metering_env):
    (metering_env["raw"] / "usage.jsonl").write_text('{"event_id": "e1"}\n')
    return metering_env


@pytest.mark.parametrize("sensor_name", ["new_usage_logs_sensor", "budget_usage_sensor"])
@pytest.mark.parametrize("busy_job", ["metering_job", "budget_job"])
@pytest.mark.parametrize("busy_status", [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTED])
def test_a_sensor_starts_nothing_while_a_run_of_either_job_is_queued_or_under_way(
    sensor_env, sensor_name, busy_job, busy_status
):
    from metering_dagster.defs.orchestration import sensors

    sensor = getattr(sensors, sensor_name)
    with dg.DagsterInstance.ephemeral() as instance:
        busy = instance.add_run(_run_of(busy_job, busy_status))
        context = dg.build_sensor_context(instance=instance)
        skipped = sensor(context)
        assert isinstance(skipped, dg.SkipReason)
        assert f"run {busy.run_id[:8]} of {busy_job}" in skipped.skip_message
        assert context.cursor is None  # the files are seen again on the next tick

        instance.delete_run(busy.run_id)  # the run is over
        requested = sensor(dg.build_sensor_context(instance=instance, cursor=context.cursor))
        assert isinstance(requested, dg.RunRequest)


def test_the_budget_sensor_starts_the_budget_job_every_10_seconds(metering_env):
    from metering_dagster.defs.orchestration.sensors import budget_usage_sensor

    assert budget_usage_sensor.job_name == "budget_job" and budget_usage_sensor.minimum_interval_seconds == 10
    with dg.DagsterInstance.ephemeral() as instance:
        # a finished run of either job holds nothing up
        instance.add_run(_run_of("metering_job", dg.DagsterRunStatus.SUCCESS))
        (metering_env["raw"] / "usage.jsonl").write_text('{"event_id": "e1"}\n')
        assert isinstance(budget_usage_sensor(dg.build_sensor_context(instance=instance)), dg.RunRequest)

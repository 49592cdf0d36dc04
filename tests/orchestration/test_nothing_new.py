"""A run with nothing new since the last completed one skips dbt and every step after it, and changes no mart.

One real run of the demo's usage (a small case: 3,016 lines, four customers) is shared by the module; each test
works on a copy of its state folder. The decision is `transform/freshness.py`, used by the metering job's dbt
step, by `metering run` before it loads Dagster, and by the hourly schedule and the new-files sensor.
"""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from metering_dagster.commands.run import run_once
from metering_dagster.commands.runner import execute_metering_job
from metering_dagster.settings import DEMO_DIR, load_settings
from metering_dagster.transform.freshness import FORCE_TAG, decide_before_run
from tests.orchestration.test_clean_run import metering

pytestmark = pytest.mark.slow

# Every run of this module reads its data "as of" the same instant, so that two runs of the same inputs build the
# same marts (fct_entitlements.as_of is the time a run looked at its data).
AS_OF = datetime(2026, 11, 1, 0, 31, tzinfo=UTC)


def _point_at(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    monkeypatch.setenv("METERING_STATE_DIR", str(folder / "state"))
    monkeypatch.setenv("METERING_RAW_DIR", str(folder / "raw"))
    monkeypatch.setenv("METERING_CONTRACT", str(folder / "metering.yml"))
    monkeypatch.setenv("DAGSTER_HOME", str(folder / "state" / "dagster_home"))


def _same_inputs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs read their data as of AS_OF; the dbt project's files are taken as unchanged (others may edit this
    checkout while the module runs: test_the_dbt_projects_hash_follows_its_sources covers the hash)."""
    monkeypatch.setattr("metering_dagster.defs.billing.assets.run_started_at", lambda context: AS_OF)
    monkeypatch.setattr("metering_dagster.transform.freshness.dbt_project_sha256", lambda: "the same project")


@pytest.fixture(scope="module")
def completed_run(tmp_path_factory, dbt_manifest) -> Path:
    """A folder (state, raw, metering.yml) after one completed metering run of the demo's usage."""
    folder = tmp_path_factory.mktemp("completed_run")
    shutil.copytree(DEMO_DIR / "raw", folder / "raw")
    shutil.copy(DEMO_DIR / "metering.yml", folder / "metering.yml")
    (folder / "state" / "dagster_home").mkdir(parents=True)
    with pytest.MonkeyPatch.context() as monkeypatch:
        _point_at(monkeypatch, folder)
        _same_inputs(monkeypatch)
        metering("clock", "advance", "--to", "2026-11-01T00:30:00Z")
        outcome = execute_metering_job()
        assert outcome.success and "metering_run_completed" in outcome.materialized, outcome.failed_steps
    return folder


@pytest.fixture
def after_run(completed_run, tmp_path, monkeypatch) -> Path:
    """A copy of the completed run's folder, the environment pointing at it, runs reading as of AS_OF."""
    folder = tmp_path / "copy"
    shutil.copytree(completed_run, folder, symlinks=True)
    _point_at(monkeypatch, folder)
    _same_inputs(monkeypatch)
    return folder


def _marts(path: Path) -> dict[str, tuple[list, list]]:
    """Every table of schema marts: its columns with their types, and its rows in order."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = [
            r[0]
            for r in con.execute(
                "select table_name from information_schema.tables where table_schema = 'marts' order by 1"
            ).fetchall()
        ]
        out = {}
        for table in tables:
            columns = con.execute(f"select column_name, column_type from (describe marts.{table})").fetchall()
            rows = con.execute(f"select * from marts.{table} order by all").fetchall()
            out[table] = (columns, rows)
        return out
    finally:
        con.close()


def _every_mart() -> dict[str, dict]:
    settings = load_settings()
    return {"warehouse": _marts(settings.warehouse_path), "analytics": _marts(settings.analytics_path)}


def _dagster_runs() -> int:
    with dg.DagsterInstance.get() as instance:
        return len(instance.get_run_records(dg.RunsFilter(job_name="metering_job")))


def test_a_run_with_nothing_new_skips_dbt_and_leaves_every_mart_as_a_run_that_does_not_skip(after_run, capsys):
    before = _every_mart()
    assert len(before["warehouse"]) == 11 and before["warehouse"] == before["analytics"]
    runs = _dagster_runs()
    assert decide_before_run(load_settings()).nothing_new, decide_before_run(load_settings()).words()

    # `metering run`: decided before Dagster loads; no Dagster run, its summary, exit code 0
    assert run_once(load_settings()) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("metering run: nothing new since run 1 (finished at ")
    assert "uploaded        0 meter events sent" in printed
    assert "reconciliation  24 of 24 lines match Stripe" in printed
    assert _dagster_runs() == runs

    # the job itself (as the UI or a schedule starts it): its dbt step builds nothing, the steps after it skip
    skipped = execute_metering_job()
    assert skipped.success and not skipped.failed_steps
    assert "metering_dbt_models" in skipped.step_seconds
    assert not [key for key in skipped.materialized if key.startswith(("marts/", "staging/", "intermediate/"))]
    for step in ("stripe_usage_report", "stripe_snapshot", "reconciliation_dbt_models", "analyst_marts"):
        assert step not in skipped.step_seconds, step
    with dg.DagsterInstance.get() as instance:
        tags = instance.get_run_by_id(skipped.run_id).tags
    assert tags["metering/skipped"].startswith("nothing new since run 1 (finished at ")
    after_skip = _every_mart()
    assert after_skip == before

    # the same inputs, the work done: dbt, the Stripe steps and the copies run, and every mart comes out the same
    worked = execute_metering_job(tags={FORCE_TAG: "true"})
    assert (
        worked.success and "analyst_marts" in worked.materialized and "marts/rpt_reconciliation" in worked.materialized
    )
    assert _every_mart() == after_skip


def _new_file(folder: Path) -> None:
    line = '{"event_id": "skip-test-1", "customer_id": "cus_acme", "action": "api_call", "timestamp": "2026-10-20T10:00:00Z"}'
    (folder / "raw" / "2026-10-20-late.jsonl").write_text(line + "\n")


def _contract_changed(folder: Path) -> None:
    with open(folder / "metering.yml", "a") as contract:
        contract.write("# reviewed\n")


def _clock_past_period_end(folder: Path) -> None:
    metering("clock", "advance", "--to", "2026-12-01T00:30:00Z")


def _previous_run_failed(folder: Path) -> None:
    # what a run that fails or is killed after its dbt step leaves: started, never recorded complete
    con = duckdb.connect(str(folder / "state" / "warehouse.duckdb"))
    con.execute(
        "insert into ops.metering_runs select run_number + 1, 'failed-run', now(), null, landed,"
        " contract_sha256, dbt_project_sha256, stripe_now, null from ops.metering_runs"
    )
    con.close()


def _pending_outbox_row(folder: Path) -> None:
    con = duckdb.connect(str(folder / "state" / "warehouse.duckdb"))
    con.execute(
        """insert into ops.stripe_ledger select * replace ('skip-test-' || identifier as identifier, seq + 100 as seq,
           'pending' as status, null as sent_at) from ops.stripe_ledger limit 1"""
    )
    con.close()


def _stripe_read_again(folder: Path) -> None:
    # what the post-finalization reconciliation job leaves: Stripe's view read after the last run reconciled it
    con = duckdb.connect(str(folder / "state" / "warehouse.duckdb"))
    con.execute("update ops.stripe_snapshot_state set snapshot_at = now() where customer_id = 'cus_acme'")
    con.close()


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (_new_file, "1 new or changed file to land"),
        (_contract_changed, "the contract changed since run 1"),
        (_clock_past_period_end, "a billing period of 4 customers ended since Stripe's time 2026-11-01T00:30:00+00:00"),
        (_previous_run_failed, "run 2 did not complete: this run does its work"),
        (_pending_outbox_row, "1 meter event in the Stripe outbox"),
        (_stripe_read_again, "Stripe's view of 1 customer was read again since the last run"),
    ],
    ids=[
        "new file",
        "contract change",
        "test clock past a period end",
        "failed previous run",
        "pending outbox row",
        "Stripe read since",
    ],
)
def test_each_change_makes_the_next_run_do_the_work(after_run, change, reason):
    assert decide_before_run(load_settings()).nothing_new
    change(after_run)
    freshness = decide_before_run(load_settings())
    assert freshness.work == reason


def test_a_change_of_engine_makes_the_next_run_do_the_work(after_run, monkeypatch):
    assert decide_before_run(load_settings()).nothing_new
    monkeypatch.setenv("METERING_ENGINE", "spark")  # marts built by DuckDB are not the Spark build's
    assert decide_before_run(load_settings()).work == "the engine changed since run 1 (duckdb to spark)"


def test_the_schedule_and_the_sensor_say_why_they_skip(after_run):
    from metering_dagster.defs.orchestration.schedules import hourly_metering_schedule
    from metering_dagster.defs.orchestration.sensors import new_usage_logs_sensor

    words = decide_before_run(load_settings()).words()
    assert words.startswith("nothing new since run 1 (finished at ")
    with dg.DagsterInstance.get() as instance:
        tick = hourly_metering_schedule(dg.build_schedule_context(instance=instance))
        assert isinstance(tick, dg.SkipReason) and tick.skip_message == words

        # a log file touched, its content as landed: the sensor sees a change, the decision nothing new
        some_file = next((after_run / "raw").rglob("*.jsonl*"))
        os.utime(some_file, ns=(some_file.stat().st_atime_ns, some_file.stat().st_mtime_ns + 10**9))
        context = dg.build_sensor_context(instance=instance, cursor="{}")
        result = new_usage_logs_sensor(context)
        assert isinstance(result, dg.SkipReason) and result.skip_message == words

        _new_file(after_run)  # a new file: the sensor and the schedule start a run
        assert isinstance(new_usage_logs_sensor(dg.build_sensor_context(instance=instance, cursor="{}")), dg.RunRequest)
        assert isinstance(hourly_metering_schedule(dg.build_schedule_context(instance=instance)), dg.RunRequest)


def test_the_dbt_projects_hash_follows_its_sources(tmp_path):
    from metering_dagster.transform.freshness import dbt_project_sha256

    (tmp_path / "models").mkdir()
    (tmp_path / "target").mkdir()
    (tmp_path / "dbt_project.yml").write_text("name: metering\n")
    (tmp_path / "models" / "fct.sql").write_text("select 1 as n\n")
    first = dbt_project_sha256(tmp_path)
    (tmp_path / "target" / "manifest.json").write_text("{}")  # what dbt writes: not a source
    assert dbt_project_sha256(tmp_path) == first
    (tmp_path / "models" / "fct.sql").write_text("select 2 as n\n")
    assert dbt_project_sha256(tmp_path) != first

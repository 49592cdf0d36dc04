"""The code location loads, and its graph is the one the product promises."""

from __future__ import annotations

import dagster as dg
import pytest
from dagster import build_sensor_context

from metering_dagster.landing.land import list_log_files, new_or_changed


def test_definitions_load_and_every_job_resolves(dbt_manifest):
    from metering_dagster.definitions import defs

    for job in defs.resolve_all_job_defs():
        assert job.name
    assert defs.resolve_job_def("metering_job")


def test_the_workspace_loads_as_dagster_dev_loads_it(dbt_manifest, metering_env):
    """`make dev` loads workspace.yaml: the code location must resolve to one Definitions object.

    Runs in a fresh DAGSTER_HOME (metering_env): a clean clone has no state folder yet.
    """
    import subprocess
    import sys
    from pathlib import Path

    from metering_dagster.settings import REPO_ROOT

    dagster = Path(sys.executable).parent / "dagster"
    done = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", "workspace.yaml"],
        check=False,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "All code locations passed validation" in done.stdout + done.stderr


def test_asset_order_land_dbt_upload_snapshot_reconcile(dbt_manifest):
    from metering_dagster.definitions import defs
    from metering_dagster.defs.transform.keys import model_key

    graph = defs.resolve_asset_graph()

    def key(name: str) -> dg.AssetKey:
        return model_key(name) if name.startswith(("fct_", "rpt_")) else dg.AssetKey(name)

    def upstream(asset: str) -> set[dg.AssetKey]:
        return graph.get(key(asset)).parent_keys

    assert key("metering_contract") in upstream("landed_usage_lines")
    assert key("landed_usage_lines") in graph.get(model_key("stg_raw__usage_lines")).parent_keys
    assert key("fct_usage_by_period") in upstream("stripe_usage_report")
    assert key("stripe_billing_objects") in upstream("stripe_usage_report")
    assert key("stripe_usage_report") in upstream("stripe_snapshot")
    assert key("stripe_snapshot") in graph.get(model_key("stg_stripe__usage_summaries")).parent_keys
    assert model_key("stg_stripe__usage_summaries") in upstream("rpt_reconciliation")
    assert key("rpt_reconciliation") in upstream("analyst_marts")
    checks = {c.name for c in graph.asset_check_keys}
    assert {"usage_upload_suite", "shadow_invoice_suite", "stripe_matches_shadow_invoice"} <= checks


def test_dbt_build_args():
    from metering_dagster.defs.transform.assets import dbt_build_args

    assert dbt_build_args() == ["build"]
    assert dbt_build_args(full_refresh=True) == ["build", "--full-refresh"]


def test_the_dbt_resource_knows_the_dbt_that_runs(dbt_manifest):
    """The resource reads dbt's version from the installed package instead of asking the CLI: they must agree."""
    import re
    import subprocess

    from metering_dagster.definitions import defs
    from metering_dagster.defs.transform.resource import PipelineDbtCliResource

    resource = defs.resources["dbt"]
    assert isinstance(resource, PipelineDbtCliResource)
    printed = subprocess.run([resource.dbt_executable, "--version"], capture_output=True, text=True, check=True).stdout
    assert str(resource._cli_version) == re.search(r"installed: (\d+\.\d+\.\d+)", printed).group(1)
    assert resource._cli_version.major < 2  # dagster-dbt then reads dbt Core's event log


def test_the_pipelines_dbt_sends_no_usage_statistics(dbt_manifest, tmp_path):
    """dbt sends anonymous usage events by default; dbt_project.yml turns them off for every invocation."""
    import json
    import os
    import subprocess

    from metering_dagster.definitions import defs
    from metering_dagster.defs.transform.project import DBT_PROJECT_DIR

    env = {k: v for k, v in os.environ.items() if k != "DBT_SEND_ANONYMOUS_USAGE_STATS"}
    (tmp_path / "target").mkdir()
    (tmp_path / "target" / "partial_parse.msgpack").write_bytes(
        (dbt_manifest.parent / "partial_parse.msgpack").read_bytes()  # a partial parse: seconds, not a full one
    )
    printed = subprocess.run(
        [
            defs.resources["dbt"].dbt_executable,
            "--log-format",
            "json",
            "--log-level",
            "debug",
            "parse",
            "--profiles-dir",
            str(DBT_PROJECT_DIR),
            "--target-path",
            str(tmp_path / "target"),
        ],
        cwd=DBT_PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    events = [json.loads(line)["info"]["name"] for line in printed.splitlines() if line.startswith("{")]
    assert "CommandCompleted" in events
    assert "SendingEvent" not in events


@pytest.mark.slow  # several dbt builds or a subprocess run: out of make test-fast
def test_dagster_dev_parses_the_dbt_project_only_when_a_dbt_file_changed(dbt_manifest):
    import os
    import subprocess
    import sys

    from metering_dagster.defs.transform.project import (
        DBT_PROJECT_DIR,
        manifest_is_current,
    )

    def load_under_dagster_dev() -> None:
        subprocess.run(
            [sys.executable, "-c", "import metering_dagster.defs.transform.project"],
            env={**os.environ, "DAGSTER_IS_DEV_CLI": "1"},
            check=True,
        )

    built = dbt_manifest.stat().st_mtime_ns
    load_under_dagster_dev()
    assert dbt_manifest.stat().st_mtime_ns == built  # current: not parsed again
    (DBT_PROJECT_DIR / "models" / "marts" / "fct_usage_daily.sql").touch()
    assert not manifest_is_current()
    load_under_dagster_dev()
    assert manifest_is_current() and dbt_manifest.stat().st_mtime_ns > built


def test_sensor_requests_a_run_for_new_files_only(metering_env):
    from metering_dagster.defs.orchestration.sensors import new_usage_logs_sensor

    raw = metering_env["raw"]
    instance = dg.DagsterInstance.ephemeral()  # the sensor asks it whether a run is under way
    context = build_sensor_context(instance=instance)
    assert isinstance(new_usage_logs_sensor(context), dg.SkipReason)

    (raw / "a.jsonl").write_text('{"event_id": "e1"}\n')
    (raw / "nested").mkdir()
    (raw / "nested" / "b.jsonl.gz").write_bytes(b"")
    (raw / "ignored.txt").write_text("x")
    first = new_usage_logs_sensor(context)
    assert isinstance(first, dg.RunRequest)
    assert set(list_log_files(raw)) == {"a.jsonl", "nested/b.jsonl.gz"}

    context = build_sensor_context(cursor=context.cursor, instance=instance)
    assert isinstance(new_usage_logs_sensor(context), dg.SkipReason)

    (raw / "c.jsonl").write_text('{"event_id": "e2"}\n')
    second = new_usage_logs_sensor(build_sensor_context(cursor=context.cursor, instance=instance))
    assert isinstance(second, dg.RunRequest) and second.run_key != first.run_key


def test_new_or_changed_sees_a_file_that_grew():
    assert new_or_changed({"a": [2, 1]}, {"a": [1, 1]}) == ["a"]
    assert new_or_changed({"a": [1, 1]}, {"a": [1, 1]}) == []

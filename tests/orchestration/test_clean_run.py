"""A clean `metering run` of the demo data logs no warning, and what it records reads well in the Dagster UI."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys

import dagster as dg
import pytest

from metering_dagster.settings import DEMO_DIR, REPO_ROOT

pytestmark = pytest.mark.slow


def metering(*args: str) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-m", "metering_dagster.cli", *args],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO_ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_a_clean_run_of_the_demo_logs_no_warning(metering_env, dbt_manifest):
    shutil.copytree(DEMO_DIR / "raw", metering_env["raw"], dirs_exist_ok=True)
    metering("clock", "advance", "--to", "2026-11-01T00:30:00Z")
    # the first uploads everything, the second (forced) finds nothing new to send, the third skips: nothing new
    runs = [metering("run"), metering("run", "--force"), metering("run")]
    assert runs[2].stdout.startswith("metering run: nothing new since run 2 (finished at "), runs[2].stdout
    assert not [line for r in runs for line in (r.stdout + r.stderr).splitlines() if "WARNING" in line]
    # stderr is metering's own progress; a Python warning or a log record with no handler would show here
    assert not [
        line for r in runs for line in r.stderr.splitlines() if line.strip() and not line.startswith("metering")
    ]

    with dg.DagsterInstance.get() as instance:
        records = instance.get_run_records(dg.RunsFilter(job_name="metering_job"), ascending=True)
        assert len(records) == 2 and all(r.dagster_run.is_success for r in records)
        first, second = (instance.all_logs(r.dagster_run.run_id) for r in records)
    warnings = [(e.step_key, e.user_message) for e in first + second if e.level >= logging.WARNING]
    assert warnings == []

    materialized = {
        e.dagster_event.asset_key.to_user_string(): e.asset_materialization.metadata
        for e in first
        if e.dagster_event_type == dg.DagsterEventType.ASSET_MATERIALIZATION
    }
    by_period = materialized["marts/fct_usage_by_period"]  # a table: its columns as typed, and its rows
    assert by_period["dagster/row_count"].value == 24
    columns = {c.name: c for c in by_period["dagster/column_schema"].value.columns}
    assert columns["quantity"].type == "DECIMAL(38,12)"
    assert columns["last_event_at"].description.startswith("Latest event timestamp in the period")
    undescribed = {
        key: [c.name for c in metadata["dagster/column_schema"].value.columns if not c.description]
        for key, metadata in materialized.items()
        if key.startswith("marts/")
    }
    assert len(undescribed) == 11 and not any(undescribed.values()), undescribed  # the analysts' marts
    staged = materialized["staging/stg_raw__usage_lines"]  # a view: its columns, no count (that would run it)
    assert "dagster/row_count" not in staged
    assert {c.name for c in staged["dagster/column_schema"].value.columns} >= {"landing_run_id", "payload"}

    gate = {
        e.dagster_event.event_specific_data.check_name: e.dagster_event.event_specific_data.description
        for e in second
        if e.dagster_event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
    }
    assert gate["shadow_invoice_suite"] == (
        "shadow_invoice: no row of marts.fct_invoice_lines_expected changed since the last upload, nothing new"
        " to check (24 rows in all, each checked when it last changed)"
    )

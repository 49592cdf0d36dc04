"""`metering bench` end to end at a small size: the real job against the embedded emulator, three runs."""

import json
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.slow  # three full runs of the pipeline

EVENTS = 20_000  # 20 customers, the bench's smallest


def test_the_bench_runs_and_reports_throughput_floor_ratio_requests_and_memory(tmp_path):
    results = tmp_path / "results"
    # A process of its own: the bench points the environment (state, Dagster home) at its work folder.
    subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            from pathlib import Path
            from metering_dagster.commands.bench.run import run_bench
            run_bench(
                {EVENTS}, workdir=Path({str(tmp_path / "work")!r}), results=Path({str(results)!r}), crossings=0
            )
        """),
        ],
        check=True,
        timeout=900,
    )
    report = json.loads((results / f"bench-{EVENTS}.json").read_text())
    full, incremental, idle = report["full_run"], report["incremental_run"], report["idle_run"]

    assert report["events"] == EVENTS and report["customers"] == 20
    assert report["duckdb_floor_seconds"] > 0 and report["ratio_to_floor"] > 1
    assert 0 < report["peak_memory_mb"] < 2048
    pages = report["console_pages_seconds"]  # every console page answered, each timed
    assert {"customers", "customer", "line", "statement"} <= set(pages) and all(v > 0 for v in pages.values())
    for run in (full, incremental, idle):
        assert run["wall_seconds"] >= sum(run["stages"].values()) > 0
    # every customer x meter of the month is reported, 100 meter events a stream request at most
    touched = report["customers"] * report["meters"]
    assert full["customer_meter_periods_touched"] == full["stripe_events_sent"] == touched
    assert full["stripe_upload_requests"] == -(-touched // 100)
    assert full["stripe_requests"] <= touched
    # 3% more events move some totals, which are sent again; nothing new sends nothing
    assert incremental["new_events"] == EVENTS * 3 // 100
    assert 0 < incremental["stripe_events_sent"] <= touched
    assert idle["stripe_events_sent"] == 0 and idle["customer_meter_periods_touched"] == 0

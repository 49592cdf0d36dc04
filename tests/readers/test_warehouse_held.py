"""A run that finds the warehouse held by another process stops at once, naming it, or waits when told to."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from metering_dagster.warehouse import connect

REPO_ROOT = Path(__file__).resolve().parents[2]
METERING = [sys.executable, "-m", "metering_dagster.cli"]


def hold_warehouse(path: Path) -> subprocess.Popen:
    """An analyst's session: a read-only DuckDB connection on the warehouse, kept until a line on its stdin."""
    script = (
        f"import duckdb, sys\ncon = duckdb.connect({str(path)!r}, read_only=True)\nprint('holding', flush=True)\n"
        "sys.stdin.readline()\ncon.close()"
    )
    reader = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert reader.stdout.readline().strip() == "holding"
    return reader


@pytest.fixture
def warehouse(metering_env, dbt_manifest) -> Path:
    path = metering_env["state"] / "warehouse.duckdb"
    connect(path).close()
    return path


def metering_run(env: dict[str, str]) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    done = subprocess.run(
        [*METERING, "run"], check=False, env=env, capture_output=True, text=True, timeout=600, cwd=REPO_ROOT
    )
    return done, time.monotonic() - started


@pytest.mark.slow  # several dbt builds or a subprocess run: out of make test-fast
def test_a_reader_holding_the_warehouse_stops_the_run_at_once_naming_it(warehouse):
    reader = hold_warehouse(warehouse)
    try:
        done, seconds = metering_run(dict(os.environ))
    finally:
        reader.kill()
        reader.wait()
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert seconds < 40, f"took {seconds:.0f} s"  # Dagster's start only; it used to wait 60 s first
    lines = [line for line in output.splitlines() if f"held by process {reader.pid} (`" in line]
    assert lines, output
    # the holder's command line, on the one line with what to do
    assert f"(`{sys.executable} -c import duckdb" in lines[-1] and "METERING_WAREHOUSE_WAIT_SECONDS" in lines[-1]
    assert "Traceback" not in output and "Stack Trace" not in output


@pytest.mark.slow  # a full `metering run` once the reader lets go
def test_with_a_wait_set_the_run_says_so_and_goes_on_once_the_reader_lets_go(warehouse):
    reader = hold_warehouse(warehouse)
    env = {**os.environ, "METERING_WAREHOUSE_WAIT_SECONDS": "120"}
    run = subprocess.Popen(
        [*METERING, "run"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT
    )
    try:
        # the run says it waits, and for whom, among its progress lines
        waiting = next(line for line in iter(run.stderr.readline, "") if "waiting" in line or "held" in line)
        time.sleep(2)
        reader.communicate("let go\n", timeout=30)
        out, err = run.communicate(timeout=600)
    finally:
        reader.kill()
        run.kill()
    assert f"waiting up to 120 s for process {reader.pid} (`{sys.executable} -c import duckdb" in waiting
    assert run.returncode == 0, out + err
    assert "held by process" not in out + err

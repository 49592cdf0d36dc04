"""A run killed with SIGKILL cannot stop its dbt child; the next run ends it instead of failing on the warehouse
that the orphan still holds."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import DEMO_DIR
from tests.periods.test_period_close import METERING, REPO_ROOT

pytestmark = pytest.mark.slow


def _dbt_holding(warehouse: Path) -> int | None:
    """The pid of a dbt process that has the warehouse file open."""
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if not any(Path(a.decode(errors="replace")).name == "dbt" for a in argv[:2]):
                continue
            if any(os.readlink(fd) == str(warehouse) for fd in (entry / "fd").iterdir()):
                return int(entry.name)
        except OSError:
            continue
    return None


def test_the_next_run_ends_the_dbt_process_of_a_killed_run(tmp_path, dbt_manifest):
    state, raw = tmp_path / "state", tmp_path / "raw"
    shutil.copytree(DEMO_DIR / "raw", raw)
    (state / "dagster_home").mkdir(parents=True)
    env = dict(
        os.environ,
        METERING_STATE_DIR=str(state),
        METERING_RAW_DIR=str(raw),
        METERING_CONTRACT=str(DEMO_DIR / "metering.yml"),
        DAGSTER_HOME=str(state / "dagster_home"),
        METERING_WAREHOUSE_WAIT_SECONDS="5",
    )
    run = subprocess.Popen(
        [*METERING, "run"],
        env=env,
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    warehouse = (state / "warehouse.duckdb").resolve()
    deadline, dbt = time.monotonic() + 300, None
    while dbt is None and time.monotonic() < deadline and run.poll() is None:
        dbt = _dbt_holding(warehouse)
        time.sleep(0.05)
    assert dbt is not None, "no dbt process opened the warehouse"
    os.kill(run.pid, signal.SIGKILL)  # the run dies; its dbt child does not
    os.kill(dbt, signal.SIGSTOP)  # and stays, holding the warehouse (a slow model, a hung query)
    run.wait()
    try:
        second = subprocess.run(
            [*METERING, "run"],
            env=env,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=600,
            start_new_session=True,
        )
        assert f"ended dbt process {dbt}, left running by a killed run" in second.stderr, second.stderr
        # it completes (Stripe's test clock is still at the contract's start: the summary says so, exit 4)
        assert second.returncode in (0, 4) and "failed step" not in second.stdout, second.stdout + second.stderr
    finally:
        try:
            os.kill(dbt, signal.SIGKILL)
        except ProcessLookupError:
            pass

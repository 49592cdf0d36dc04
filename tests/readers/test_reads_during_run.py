"""`metering explain` and `corrections preview` answer during a run, from the reader copy, without waiting for it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from metering_dagster.locks import run_lock

pytestmark = pytest.mark.slow  # a full `metering run`

REPO_ROOT = Path(__file__).resolve().parents[2]
METERING = [sys.executable, "-m", "metering_dagster.cli"]


def calls(path: Path, first: int, n: int) -> None:
    path.write_text(
        "".join(
            json.dumps(
                {
                    "event_id": f"call-{i}",
                    "timestamp": f"2026-10-05T10:{i:02d}:00Z",
                    "customer_id": "cus_acme",
                    "action": "api_request",
                    "metadata": {},
                }
            )
            + "\n"
            for i in range(first, first + n)
        )
    )


def metering(*args: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*METERING, *args],
        check=False,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO_ROOT,
    )


def test_explain_and_preview_answer_while_a_run_holds_the_warehouse_and_the_run_lock(metering_env, dbt_manifest):
    calls(metering_env["raw"] / "first.jsonl", 0, 3)
    first = metering("run", timeout=600)
    assert first.returncode in (0, 4), first.stdout + first.stderr
    calls(metering_env["raw"] / "second.jsonl", 3, 2)  # arrived since: what the preview reports

    state = metering_env["state"]
    with run_lock(state, wait_seconds=0):  # a run in progress: its lock, and the warehouse open for writing
        writer = duckdb.connect(str(state / "warehouse.duckdb"))
        try:
            # Before, both waited for the run lock (up to 600 s): the timeouts below would expire.
            explained = metering("explain", "--customer", "cus_acme", "--period", "2026-10-01", timeout=120)
            preview = metering("corrections", "preview", timeout=180)
        finally:
            writer.close()
    assert explained.returncode == 0, explained.stdout + explained.stderr
    assert "api_calls" in explained.stdout
    assert preview.returncode == 0, preview.stdout + preview.stderr
    assert "cus_acme" in preview.stdout and "quantity 3 -> 5" in preview.stdout

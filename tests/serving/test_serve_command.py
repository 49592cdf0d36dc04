"""`metering serve` as a user starts it: refuses without a token, prints its address, answers during a run."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from tests.serving.conftest import TOKEN, Api, fresh, publish

REPO_ROOT = Path(__file__).resolve().parents[2]
METERING = [sys.executable, "-m", "metering_dagster.cli"]


def environment(state: Path, token: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "METERING_API_TOKEN"}
    env["METERING_STATE_DIR"] = str(state)
    if token is not None:
        env["METERING_API_TOKEN"] = token
    return env


@pytest.mark.parametrize("token", [None, "", "short-token", "a token with spaces in it"])
def test_it_refuses_to_start_without_a_usable_token(state, token):
    done = subprocess.run(
        [*METERING, "serve", "--port", "0"],
        env=environment(state, token),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("metering serve: METERING_API_TOKEN "), done.stderr
    assert not token or token not in done.stderr


def test_it_answers_at_once_while_a_run_holds_the_warehouse(state):
    publish(state, as_of=fresh())
    server = subprocess.Popen(
        [*METERING, "serve", "--port", "0"],
        env=environment(state, TOKEN),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
    )
    try:
        line = server.stdout.readline()
        assert TOKEN not in line
        address = re.search(r"on (http://127\.0\.0\.1:\d+) ", line)
        assert address, line
        api = Api(address.group(1))
        # What a run does: the warehouse open for writing, here by this process, for as long as the reads take.
        warehouse = duckdb.connect(str(state / "warehouse.duckdb"))
        try:
            warehouse.execute("create table t as select 1 as x")
            started = time.monotonic()
            answer = api.get("/v1/entitlements/cus_globex")
            seconds = time.monotonic() - started
        finally:
            warehouse.close()
        assert (answer.status, answer.body["access"]) == (200, "block")
        assert seconds < 1, f"took {seconds:.2f} s"
    finally:
        server.send_signal(signal.SIGINT)
        out, err = server.communicate(timeout=30)
    assert server.returncode == 0, err
    assert out == "" and TOKEN not in err  # the one address line was all of stdout

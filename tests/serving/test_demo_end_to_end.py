"""The entitlements API on the demo's data: one real `metering run`, then the real server over what it published."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from metering_dagster.serving.api import create_app
from metering_dagster.settings import load_settings
from tests.serving.conftest import TOKEN, Api, run_server

pytestmark = pytest.mark.slow  # a full `metering run`

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO = REPO_ROOT / "data" / "demo"
OCTOBER = {"period_start": "2026-10-01T00:00:00Z", "period_end": "2026-11-01T00:00:00Z"}


def test_the_demo_blocks_globex_over_its_call_cap_and_allows_the_others(metering_env, dbt_manifest, caplog):
    shutil.copytree(DEMO / "raw", metering_env["raw"], dirs_exist_ok=True)
    run = subprocess.run(
        [sys.executable, "-m", "metering_dagster.cli", "run"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO_ROOT,
        check=False,
    )
    assert run.returncode in (0, 4), run.stdout + run.stderr
    finished = datetime.now(UTC)

    # Stripe's test clock is at its start (October 1st): October is the current period.
    server, thread, base = run_server(create_app(load_settings(), TOKEN))
    try:
        api = Api(base)
        globex = api.get("/v1/entitlements/cus_globex").body
        assert (globex["access"], globex["reasons"], globex["stale"]) == (
            "block",
            ["api_call_cap: 186 of 150 call (124%)"],
            False,
        )
        assert {"key": "api_call_cap", "used": "186", "limit": "150", "percent": "124", "unit": "call"} | OCTOBER in (
            globex["budgets"]
        )
        acme = api.get("/v1/entitlements/cus_acme").body
        assert (acme["access"], acme["budgets"]) == (
            "allow",
            [
                {"key": "monthly_spend", "used": "19668", "limit": "20000", "percent": "98.34", "unit": "cents"}
                | OCTOBER
            ],
        )
        listed = api.get("/v1/entitlements").body
        assert [c["customer_id"] for c in listed["data"]] == ["cus_acme", "cus_globex", "cus_initech", "cus_umbrella"]
        assert [c["customer_id"] for c in api.get("/v1/entitlements?access=block").body["data"]] == ["cus_globex"]
        # as_of: when the run looked at the raw folder
        as_of = datetime.fromisoformat(listed["as_of"].replace("Z", "+00:00"))
        assert 0 <= (finished - as_of).total_seconds() < 300
        assert api.get("/healthz", token=None).body == {"status": "ok", "as_of": listed["as_of"], "stale": False}

        # An hour later, the same copy is stale: the demo's contract fails open, and says so.
        app_later = create_app(load_settings(), TOKEN, clock=lambda: finished + timedelta(hours=1))
        later_server, later_thread, later_base = run_server(app_later)
        try:
            with caplog.at_level(logging.WARNING, logger="metering.serve"):
                stale = Api(later_base).get("/v1/entitlements/cus_globex").body
        finally:
            later_server.should_exit = True
            later_thread.join(timeout=10)
        assert (stale["access"], stale["stale"]) == ("allow", True)
        assert stale["reasons"] == [f"stale: data as of {listed['as_of']} is older than 15m (fail_mode open)"]
        assert any("cus_globex" in r.getMessage() for r in caplog.records if r.name == "metering.serve")
    finally:
        server.should_exit = True
        thread.join(timeout=10)

"""Shared fixtures: an isolated state folder per test, and the dbt manifest prepared once."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_DIR = REPO_ROOT / "data" / "demo"

# Keep test runs off any real Stripe account and away from the user's state folder.
for _var in ("STRIPE_API_KEY", "STRIPE_API_BASE", "METERING_ENV"):
    os.environ.pop(_var, None)


@pytest.fixture(scope="session")
def dbt_manifest() -> Path:
    from metering_dagster.defs.transform.project import dbt_project, prepare_manifest

    prepare_manifest()
    return dbt_project.manifest_path


@pytest.fixture
def metering_env(tmp_path, monkeypatch):
    """A fresh METERING_STATE_DIR / DAGSTER_HOME, the demo contract and an empty raw folder."""
    state = tmp_path / "state"
    raw = tmp_path / "raw"
    raw.mkdir()
    contract = tmp_path / "metering.yml"
    shutil.copy(DEMO_DIR / "metering.yml", contract)
    monkeypatch.setenv("METERING_STATE_DIR", str(state))
    monkeypatch.setenv("METERING_RAW_DIR", str(raw))
    monkeypatch.setenv("METERING_CONTRACT", str(contract))
    monkeypatch.setenv("DAGSTER_HOME", str(state / "dagster_home"))
    (state / "dagster_home").mkdir(parents=True)
    return {"state": state, "raw": raw, "contract": contract}


# The usage console on one `metering demo`, shared by every folder that tests it (tests/serving, tests/browser):
# registered here once, so that the demo runs once per session (imported last: it reads DEMO_DIR above).
from tests.serving.console_demo import console_demo  # noqa: E402, F401

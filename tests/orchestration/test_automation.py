"""Opening the Dagster UI starts no billing run: every schedule and sensor loads stopped unless
METERING_AUTOMATION=on (production)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from metering_dagster.settings import (
    REPO_ROOT,
    SettingsError,
    automation_enabled,
    load_settings,
)

# What `dagster dev` does with workspace.yaml: import its module, take its attribute, read every schedule's and
# sensor's status (the status a fresh instance gives them).
LOAD_AS_DAGSTER_DEV = """
import importlib, json, yaml
location = yaml.safe_load(open("workspace.yaml"))["load_from"][0]["python_module"]
defs = getattr(importlib.import_module(location["module_name"]), location["attribute"])
repository = defs.get_repository_def()
print(json.dumps({
    **{s.name: s.default_status.value for s in repository.schedule_defs},
    **{s.name: s.default_status.value for s in repository.sensor_defs},
}))
"""


def statuses_when_loaded(automation: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "METERING_AUTOMATION"}
    if automation is not None:
        env["METERING_AUTOMATION"] = automation
    done = subprocess.run(
        [sys.executable, "-c", LOAD_AS_DAGSTER_DEV],
        check=False,
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_every_schedule_and_sensor_is_stopped_by_default(dbt_manifest, metering_env):
    statuses = statuses_when_loaded(None)
    assert {
        "hourly_metering",
        "period_close",
        "post_finalization_reconciliation",
        "dead_letter_retry",
        "new_usage_logs_sensor",
    } <= set(statuses)
    assert set(statuses.values()) == {"STOPPED"}, statuses


def test_metering_automation_on_starts_them_all(dbt_manifest, metering_env):
    statuses = statuses_when_loaded("on")
    assert len(statuses) >= 5
    assert set(statuses.values()) == {"RUNNING"}, statuses


def test_metering_automation_is_on_or_off(monkeypatch):
    for text, enabled in (("on", True), ("ON", True), (" off ", False), ("off", False), ("", False)):
        monkeypatch.setenv("METERING_AUTOMATION", text)
        assert automation_enabled() is enabled
    monkeypatch.setenv("METERING_AUTOMATION", "yes")
    with pytest.raises(SettingsError, match="METERING_AUTOMATION must be on or off, got 'yes'"):
        load_settings()

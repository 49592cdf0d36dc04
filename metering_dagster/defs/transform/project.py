"""The one place that builds the dbt project."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from dagster_dbt import DbtProject

from metering_dagster.settings import REPO_ROOT, export_environment

DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"

# dagster-dbt runs `dbt` from PATH. Run from the locked .venv without activating it
# (`.venv/bin/metering run`), PATH lacks the venv: put this Python's bin folder first.
_VENV_BIN = str(Path(sys.executable).parent)
if shutil.which("dbt", path=_VENV_BIN) and shutil.which("dbt") != shutil.which("dbt", path=_VENV_BIN):
    os.environ["PATH"] = _VENV_BIN + os.pathsep + os.environ.get("PATH", "")
# profiles.yml reads METERING_STATE_DIR; give it the defaults of metering_dagster.settings.
export_environment()

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)


def manifest_is_current() -> bool:
    """True when manifest.json is newer than every file of the dbt project."""
    manifest = dbt_project.manifest_path
    if not manifest.exists():
        return False
    built = manifest.stat().st_mtime
    sources = (p for p in DBT_PROJECT_DIR.rglob("*") if p.suffix in (".sql", ".yml", ".yaml", ".csv"))
    return all(p.stat().st_mtime < built for p in sources if "target" not in p.relative_to(DBT_PROJECT_DIR).parts)


def prepare_manifest(force: bool = False) -> None:
    """Write target/manifest.json (dbt parse) so the Definitions can load; skipped when current.

    What dagster-dbt's preparer runs (the project has no packages to install), through our resource
    so that a first run does not pay dagster-dbt's per-invocation overhead (resource.py).
    """
    from metering_dagster.defs.transform.resource import PipelineDbtCliResource

    if force or not manifest_is_current():
        PipelineDbtCliResource(project_dir=dbt_project).cli(
            ["parse", "--quiet"], target_path=dbt_project.target_path
        ).wait()


# `dagster dev` (which sets DAGSTER_IS_DEV_CLI) parses the project when it starts or reloads and a dbt file
# changed; `metering` and the tests call prepare_manifest() themselves. dagster-dbt's `prepare_if_dev()`
# would parse on every start, through its own overhead.
if os.getenv("DAGSTER_IS_DEV_CLI"):
    prepare_manifest()

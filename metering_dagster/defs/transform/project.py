"""The one place that builds the dbt project."""

from __future__ import annotations

import sys
from pathlib import Path

from dagster_dbt import DbtProject

from metering_dagster.defs.transform.resource import PipelineDbtCliResource
from metering_dagster.settings import REPO_ROOT, dagster_dev_cli

DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)


def dbt_executable() -> str:
    """This environment's dbt. Run from the locked .venv without activating it (`.venv/bin/metering run`),
    PATH lacks the venv: dagster-dbt is given the dbt beside this Python instead of changing PATH."""
    beside = Path(sys.executable).parent / "dbt"
    return str(beside) if beside.exists() else "dbt"


def dbt_resource() -> PipelineDbtCliResource:
    """The dbt CLI resource on this project (DECISIONLOG.md "dbt from Dagster": why not the stock one)."""
    return PipelineDbtCliResource(project_dir=dbt_project, dbt_executable=dbt_executable())


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

    What dagster-dbt's preparer runs (the project has no packages to install), when a dbt file changed.
    """
    if force or not manifest_is_current():
        dbt_resource().cli(["parse", "--quiet"], target_path=dbt_project.target_path).wait()


# `dagster dev` (which sets DAGSTER_IS_DEV_CLI) parses the project when it starts or reloads and a dbt file
# changed; `metering` and the tests call prepare_manifest() themselves. dagster-dbt's `prepare_if_dev()`
# would parse on every start, through its own overhead.
if dagster_dev_cli():
    prepare_manifest()

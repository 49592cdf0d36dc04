"""The one place that builds the dbt project."""

from __future__ import annotations

from metering_dagster.settings import REPO_ROOT
from dagster_dbt import DbtProject

DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
# `dagster dev` parses the project on start; `metering` and the tests call prepare_manifest().
dbt_project.prepare_if_dev()


def prepare_manifest() -> None:
    """Write target/manifest.json (dbt parse) so the Definitions can load."""
    dbt_project.preparer.prepare(dbt_project)

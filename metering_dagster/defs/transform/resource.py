"""dagster-dbt's CLI resource, without two costs that buy a metering run nothing."""

from __future__ import annotations

from functools import cached_property
from importlib.metadata import version as installed_version

from dagster_dbt import DbtCliResource
from packaging import version


class PipelineDbtCliResource(DbtCliResource):
    """`DbtCliResource`, minus ~4 s of this process's time per dbt step (two per run).

    Before every invocation dagster-dbt (a) runs `dbt --version` in a subprocess, to tell dbt Core
    from the Fusion engine, and (b) loads dbt's adapter and macros into this process. The adapter
    only serves `fetch_row_counts()` / `fetch_column_metadata()`, which our assets do not call;
    without it dagster-dbt also streams each model's result as dbt reports it instead of after
    dbt exits. `project.py` gives it the dbt beside this Python, so the installed dbt-core is the
    CLI that runs (a test checks that the two agree). Measured against the stock resource in
    DECISIONLOG.md ("dbt from Dagster").
    """

    @cached_property
    def _cli_version(self) -> version.Version:
        return version.parse(installed_version("dbt-core"))

    def _initialize_dbt_core_adapter(self, args):  # noqa: ARG002 - dagster-dbt's signature
        return None

"""dagster-dbt's CLI resource, without two costs that buy a metering run nothing."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from functools import cached_property
from importlib.metadata import version as installed_version
from pathlib import Path

from dagster_dbt import DbtCliResource
from dagster_dbt.core.dbt_cli_event import DbtCliEventMessage
from dagster_dbt.core.dbt_cli_invocation import DbtCliInvocation
from packaging import version

from metering_dagster.settings import export_spark_sources, load_settings, metering_engine
from metering_dagster.transform.spark_marts import copy_spark_models, models_built, spark_warehouse_dir
from metering_dagster.transform.spark_sources import export_sources_to_parquet
from metering_dagster.warehouse import connect


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

    def cli(self, args: Sequence[str], **kwargs) -> DbtCliInvocation:
        """dbt on the engine METERING_ENGINE names (`cli_on_engine`)."""
        return cli_on_engine(self, args, **kwargs)


# The commands that build models: on the Spark engine they read the sources as Parquet and their tables are copied
# back into the warehouse file. Others (parse, the tests' ls) run on the default target.
BUILDING_COMMANDS = ("build", "run")


@dataclass
class SparkDbtCliInvocation(DbtCliInvocation):
    """A dbt invocation on the `spark` target: once dbt exits, the tables it built are copied into the warehouse
    file (transform/spark_marts.py), also when it failed part way (as DuckDB keeps what it built)."""

    warehouse_path: Path | None = None
    state_dir: Path | None = None

    def stream_raw_events(self) -> Iterator[DbtCliEventMessage]:
        try:
            yield from super().stream_raw_events()
        finally:
            if self.process.poll() is not None:  # dbt has exited (not a consumer that stopped reading)
                self._copy_built_tables()

    def _copy_built_tables(self) -> None:
        if not (self.target_path / "run_results.json").exists():
            return  # dbt stopped before building anything
        built = models_built(self.target_path)
        with connect(self.warehouse_path) as con:
            copy_spark_models(con, spark_warehouse_dir(self.state_dir), built)


def cli_on_engine(resource: DbtCliResource, args: Sequence[str], **kwargs) -> DbtCliInvocation:
    """`DbtCliResource.cli` on the engine METERING_ENGINE names. On Spark a building command first writes the sources
    as Parquet (transform/spark_sources.py), runs on the `spark` target, and its tables come back into the
    warehouse file when it ends."""
    if metering_engine() != "spark" or not set(args) & set(BUILDING_COMMANDS):
        return DbtCliResource.cli(resource, args, **kwargs)
    settings = load_settings()
    location = export_spark_sources(settings.state_dir)
    with connect(settings.warehouse_path) as con:
        export_sources_to_parquet(con, location)
    invocation = DbtCliResource.cli(resource, [*args, "--target", "spark"], **kwargs)
    fields = {f.name: getattr(invocation, f.name) for f in dataclass_fields(invocation) if f.init}
    return SparkDbtCliInvocation(**fields, warehouse_path=settings.warehouse_path, state_dir=settings.state_dir)

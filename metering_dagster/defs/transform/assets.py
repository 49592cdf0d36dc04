"""dbt models as Dagster assets, in two steps around the Stripe upload.

`metering_dbt_models` validates, dedupes and aggregates before the upload;
`reconciliation_dbt_models` (dbt tag `reconciliation`) compares with Stripe's view
after the snapshot. One dbt asset cannot both feed and follow the Stripe assets.

In the metering job, `metering_dbt_models` first asks `transform/freshness.py` whether anything is new since the
last completed run: when nothing is, it builds nothing and yields no materialization (its outputs are optional,
as for any subset of dbt assets), so Dagster skips every step after it, and the log and the run's tags say why.
"""

from datetime import datetime
from pathlib import Path

import dagster as dg
import duckdb
from dagster_dbt import DbtCliResource, dbt_assets

from metering_dagster.defs.resources import MeteringResource
from metering_dagster.defs.transform.metadata import stream_with_table_metadata
from metering_dagster.defs.transform.project import dbt_project
from metering_dagster.defs.transform.translator import translator
from metering_dagster.quality.suites import import_in_background
from metering_dagster.settings import load_settings
from metering_dagster.transform.freshness import (
    FORCE_TAG,
    SKIPPABLE_JOB,
    decide,
    record_run_started,
)
from metering_dagster.transform.rebuild import (
    contract_changed_since_build,
    record_build,
)

RECONCILIATION_SELECTOR = "tag:reconciliation"
# The run's tag when its dbt step found nothing new (the words of transform/freshness.py): the UI shows it.
SKIPPED_TAG = "metering/skipped"


def latest_stripe_now(con) -> datetime | None:
    """Stripe's time as this run's `stripe_clock` step recorded it (the latest reading)."""
    try:
        row = con.execute("select stripe_now from ops.stripe_clock_readings order by read_at desc limit 1").fetchone()
    except duckdb.CatalogException:
        return None
    return row[0] if row else None


def dbt_build_args(full_refresh: bool = False) -> list[str]:
    """The dbt CLI arguments of a pipeline run: `build` runs each model, then its tests."""
    return ["build", "--full-refresh"] if full_refresh else ["build"]


# Unit tests check the SQL, not the data: CI runs them (tests/pipeline), a pipeline run skips them.
PIPELINE_ONLY_ARGS = ["--exclude-resource-type", "unit_test"]


def dbt_target_path(asset_name: str) -> Path:
    """A fixed target folder per warehouse and asset, so dbt's partial parse file survives between runs.

    dbt re-parses the whole project when the profile differs from the one its partial_parse.msgpack was
    written with, and the profile holds the state folder: a shared folder would be re-parsed (~5 s) on
    every run. Runs of one warehouse never overlap (run lock), so one folder per asset is safe.
    """
    return load_settings().state_dir / "dbt_target" / asset_name


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    exclude=RECONCILIATION_SELECTOR,
    dagster_dbt_translator=translator,
    name="metering_dbt_models",
)
def metering_dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, metering: MeteringResource):
    contract = metering.contract()
    recorded = context.job_name == SKIPPABLE_JOB
    with metering.warehouse() as con:
        stripe_now = latest_stripe_now(con)
        if recorded and context.run.tags.get(FORCE_TAG) != "true":
            freshness = decide(con, contract, metering.settings().contract_path, stripe_now)
            if freshness.nothing_new:
                # no materialization: Dagster skips the steps after this one (no dbt, no upload, no copies)
                context.log.info(f"{freshness.words()}: dbt and the steps after it are skipped")
                context.instance.add_run_tags(context.run.run_id, {SKIPPED_TAG: freshness.words()[:255]})
                return
            context.log.info(f"building: {freshness.words()}")
        if recorded:
            record_run_started(con, context.run.run_id, metering.settings().contract_path, stripe_now)
        rebuild = contract_changed_since_build(con, contract)
    import_in_background()  # the quality checks that follow need it; dbt runs in a process of its own
    if rebuild:
        context.log.info(
            "the contract's customers, anchors or meters changed since the models were built (or this is the first"
            " build): every landed line is validated again and every model rebuilt (dbt --full-refresh)"
        )
    yield from stream_with_table_metadata(
        dbt.cli(
            [*dbt_build_args(full_refresh=rebuild), *PIPELINE_ONLY_ARGS],
            context=context,
            target_path=dbt_target_path("metering_dbt_models"),
        )
    )
    if rebuild:
        with metering.warehouse() as con:
            record_build(con, contract)


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    select=RECONCILIATION_SELECTOR,
    dagster_dbt_translator=translator,
    name="reconciliation_dbt_models",
)
def reconciliation_dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource):
    yield from stream_with_table_metadata(
        dbt.cli(
            [*dbt_build_args(), *PIPELINE_ONLY_ARGS],
            context=context,
            target_path=dbt_target_path("reconciliation_dbt_models"),
        )
    )


defs = dg.Definitions(assets=[metering_dbt_models, reconciliation_dbt_models])

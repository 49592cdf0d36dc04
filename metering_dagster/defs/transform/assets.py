"""dbt models as Dagster assets, in two steps around the Stripe upload.

`metering_dbt_models` validates, dedupes and aggregates before the upload;
`reconciliation_dbt_models` (dbt tag `reconciliation`) compares with Stripe's view
after the snapshot. One dbt asset cannot both feed and follow the Stripe assets.
"""


import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, dbt_assets

from metering_dagster.defs.transform.project import dbt_project

RECONCILIATION_SELECTOR = "tag:reconciliation"

# Several tables of one Python asset (e.g. contract.*) are sources that share its key.
translator = DagsterDbtTranslator(
    settings=DagsterDbtTranslatorSettings(
        enable_asset_checks=True, enable_duplicate_source_asset_keys=True
    )
)


def dbt_build_args(full_refresh: bool = False) -> list[str]:
    """The dbt CLI arguments of a pipeline run: `build` runs each model, then its tests."""
    return ["build", "--full-refresh"] if full_refresh else ["build"]


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    exclude=RECONCILIATION_SELECTOR,
    dagster_dbt_translator=translator,
    name="metering_dbt_models",
)
def metering_dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource):
    yield from dbt.cli(dbt_build_args(), context=context).stream()


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    select=RECONCILIATION_SELECTOR,
    dagster_dbt_translator=translator,
    name="reconciliation_dbt_models",
)
def reconciliation_dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource):
    yield from dbt.cli(dbt_build_args(), context=context).stream()


defs = dg.Definitions(assets=[metering_dbt_models, reconciliation_dbt_models])

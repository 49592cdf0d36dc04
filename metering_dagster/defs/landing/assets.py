"""Raw usage logs landed into the warehouse, once per file."""

from __future__ import annotations

import dagster as dg

from metering_dagster.defs.contract.assets import metering_contract
from metering_dagster.defs.resources import MeteringResource
from metering_dagster.landing import land_new_files


@dg.asset(
    group_name="landing",
    kinds={"polars", "duckdb"},
    deps=[metering_contract],
    description="New *.jsonl / *.jsonl.gz files under the raw folder, parsed once into raw.usage_lines.",
)
def landed_usage_lines(context: dg.AssetExecutionContext, metering: MeteringResource) -> dg.MaterializeResult:
    settings = metering.settings()
    with metering.warehouse() as con:
        result = land_new_files(con, settings.raw_dir)
    context.log.info(result.summary())
    return dg.MaterializeResult(metadata=result.metadata())


defs = dg.Definitions(assets=[landed_usage_lines])

"""A read-only copy of the marts for analysts.

DuckDB lets one process write a database file, and no other process may open it
meanwhile, even read-only. So each run ends by publishing the `marts` schema to
`analytics.duckdb` (built beside it, then renamed over it): analysts query that
file at any time and see the last completed run.
"""

from __future__ import annotations

import dagster as dg

from metering_dagster.defs.budgets.assets import budget_alerts
from metering_dagster.defs.resources import MeteringResource
from metering_dagster.defs.transform.keys import model_key
from metering_dagster.serving.publish import publish_marts
from metering_dagster.serving.reader_copy import publish_reader_copy
from metering_dagster.transform.rebuild import built_generation


@dg.asset(
    group_name="serving",
    kinds={"duckdb"},
    deps=[
        model_key("rpt_reconciliation"),
        model_key("rpt_budget_alerts"),
        model_key("rpt_stripe_budget_alerts"),
        # what the entitlements API reads: named, so that the budget job (which builds no rpt_*) publishes after them
        model_key("fct_entitlements"),
        budget_alerts,
    ],
    description="marts.* copied to $METERING_STATE_DIR/analytics.duckdb for read-only queries during runs.",
)
def analyst_marts(metering: MeteringResource) -> dg.MaterializeResult:
    settings = metering.settings()
    with metering.warehouse() as con:
        tables = publish_marts(con, settings.analytics_path, generation=built_generation(con))
        publish_reader_copy(con, settings)
    return dg.MaterializeResult(metadata={"path": str(settings.analytics_path), "tables": ", ".join(tables)})


defs = dg.Definitions(assets=[analyst_marts])

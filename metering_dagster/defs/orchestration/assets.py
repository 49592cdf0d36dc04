"""The metering job's last step: the run is recorded complete, so that a next run with nothing new may skip.

It follows every step that changes what readers see (the analysts' copy, closed periods' results): a run that
failed or stopped before it stays recorded unfinished, and the next run does its work (transform/freshness.py).
"""

import dagster as dg

from metering_dagster.defs.periods.assets import closed_period_reconciliation
from metering_dagster.defs.resources import MeteringResource
from metering_dagster.defs.serving.assets import analyst_marts
from metering_dagster.transform.freshness import record_run_finished


@dg.asset(
    group_name="orchestration",
    kinds={"duckdb"},
    deps=[analyst_marts, closed_period_reconciliation],
    description="The run recorded complete in ops.metering_runs: a next run with nothing new since it skips dbt.",
)
def metering_run_completed(context: dg.AssetExecutionContext, metering: MeteringResource) -> dg.MaterializeResult:
    with metering.warehouse() as con:
        number = record_run_finished(con, context.run.run_id)
    return dg.MaterializeResult(metadata={"run_number": number if number is not None else "-"})

"""The metering job: the whole graph, the same for the schedule, the sensor and `metering run`."""

from __future__ import annotations

import dagster as dg

METERING_JOB_NAME = "metering_job"

# In-process: DuckDB takes one writing process, so steps run one after another in the run's process.
metering_job = dg.define_asset_job(
    name=METERING_JOB_NAME,
    # Everything but the dead-letter retry, which has its own job and schedule (defs/delivery).
    selection=dg.AssetSelection.all() - dg.AssetSelection.tag("metering/own_job", "dead_letter_retry"),
    executor_def=dg.in_process_executor,
    description="Land new usage logs, validate/dedupe/aggregate (dbt), gate, report to Stripe, reconcile.",
    tags={"dagster/max_retries": 0},
)

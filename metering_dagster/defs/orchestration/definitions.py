from __future__ import annotations

import dagster as dg

from metering_dagster.defs.orchestration.assets import metering_run_completed
from metering_dagster.defs.orchestration.jobs import budget_job, metering_job
from metering_dagster.defs.orchestration.schedules import hourly_metering_schedule
from metering_dagster.defs.orchestration.sensors import budget_usage_sensor, new_usage_logs_sensor

defs = dg.Definitions(
    assets=[metering_run_completed],
    jobs=[metering_job, budget_job],
    schedules=[hourly_metering_schedule],
    sensors=[new_usage_logs_sensor, budget_usage_sensor],
)

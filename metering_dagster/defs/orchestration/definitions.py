from __future__ import annotations

import dagster as dg

from metering_dagster.defs.orchestration.jobs import metering_job
from metering_dagster.defs.orchestration.schedules import hourly_metering_schedule
from metering_dagster.defs.orchestration.sensors import new_usage_logs_sensor

defs = dg.Definitions(jobs=[metering_job], schedules=[hourly_metering_schedule], sensors=[new_usage_logs_sensor])

"""Hourly run of the metering job."""

from __future__ import annotations

import dagster as dg

from metering_dagster.defs.orchestration.jobs import metering_job

hourly_metering_schedule = dg.ScheduleDefinition(
    name="hourly_metering",
    job=metering_job,
    cron_schedule="0 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every hour: land what arrived, aggregate, report to Stripe, reconcile.",
)

"""Every 15 minutes: retry the dead letters (only that asset and its check, not the whole graph)."""

import dagster as dg

from metering_dagster.defs.delivery.assets import DEAD_LETTER_ASSET
from metering_dagster.defs.orchestration.automation import default_schedule_status

DEAD_LETTER_JOB_NAME = "dead_letter_retry_job"

dead_letter_retry_job = dg.define_asset_job(
    name=DEAD_LETTER_JOB_NAME,
    selection=dg.AssetSelection.assets(DEAD_LETTER_ASSET),
    executor_def=dg.in_process_executor,
    description="Re-send the open rows of ops.stripe_dead_letters with their original identifiers.",
)

dead_letter_retry_schedule = dg.ScheduleDefinition(
    name="dead_letter_retry",
    job=dead_letter_retry_job,
    cron_schedule="*/15 * * * *",
    execution_timezone="UTC",
    default_status=default_schedule_status(),
    description="Every 15 minutes: re-send what Stripe did not take within the retry budget.",
)

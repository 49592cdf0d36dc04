"""Schedules: the hourly run, period close, and the reconciliation after invoices finalize.

Period close and the post-finalization reconciliation are evaluated every 15 minutes against the
contract's billing anchors and grace period (wall clock, as Stripe in live mode): they start a run
only when a period is inside its grace period (the final upload must happen before Stripe
finalizes) or when an invoice has just finalized. With a Stripe test clock, `metering run` after
`metering clock advance` does the same work.
"""

from __future__ import annotations

from datetime import timedelta

import dagster as dg

from metering_dagster.contract import load_contract
from metering_dagster.defs.orchestration.automation import default_schedule_status
from metering_dagster.defs.orchestration.jobs import metering_job
from metering_dagster.defs.orchestration.sensors import nothing_new_words, unfinished_warehouse_run
from metering_dagster.defs.periods.jobs import reconciliation_job
from metering_dagster.locks import RunLockBusy
from metering_dagster.periods.calendar import periods_finalized_within, periods_in_grace
from metering_dagster.settings import load_settings

CHECK_EVERY = timedelta(minutes=15)


@dg.schedule(
    name="hourly_metering",
    job=metering_job,
    cron_schedule="0 * * * *",
    execution_timezone="UTC",
    default_status=default_schedule_status(),
    description=(
        "Every hour: land what arrived, aggregate, report to Stripe, reconcile; skipped (no run) when nothing is"
        " new since the last completed run, with the reason `metering run` prints."
    ),
)
def hourly_metering_schedule(context: dg.ScheduleEvaluationContext):
    busy = unfinished_warehouse_run(context.instance)
    if busy is not None:
        return dg.SkipReason(f"run {busy.run_id[:8]} of {busy.job_name} is {busy.status.value.lower()}")
    try:
        words = nothing_new_words()
    except RunLockBusy as held:
        return dg.SkipReason(str(held))
    return dg.RunRequest() if words is None else dg.SkipReason(words)


def _contract():
    return load_contract(load_settings().contract_path)


def _tag(periods) -> str:
    return ", ".join(f"{c}@{end.isoformat()}" for c, end in periods)[:255]


def _period_schedule(name: str, job, cron: str, description: str, find, skip: str, trigger: str):
    """A schedule that starts `job` only when `find(contract, scheduled time)` names periods."""

    @dg.schedule(
        name=name,
        job=job,
        cron_schedule=cron,
        execution_timezone="UTC",
        default_status=default_schedule_status(),
        description=description,
    )
    def _schedule(context: dg.ScheduleEvaluationContext):
        periods = find(_contract(), context.scheduled_execution_time)
        if not periods:
            return dg.SkipReason(skip)
        return dg.RunRequest(tags={"metering/trigger": trigger, "metering/periods": _tag(periods)})

    return _schedule


def _in_grace(contract, now):
    return periods_in_grace(contract, now)


def _just_finalized(contract, now):
    return periods_finalized_within(contract, now, CHECK_EVERY)


period_close_schedule = _period_schedule(
    "period_close",
    metering_job,
    "5,20,35,50 * * * *",
    "While a period is inside its grace period: run the metering job so that the final upload happens"
    " before Stripe finalizes the invoice (the run's period_close step says so), and hold invoices"
    " whose sources are incomplete.",
    _in_grace,
    "no billing period is inside its grace period",
    "period_close",
)

post_finalization_reconciliation_schedule = _period_schedule(
    "post_finalization_reconciliation",
    reconciliation_job,
    "10,25,40,55 * * * *",
    "After Stripe finalizes period invoices: reconcile them and record a result per customer.",
    _just_finalized,
    "no period invoice finalized in the last 15 minutes",
    "post_finalization",
)

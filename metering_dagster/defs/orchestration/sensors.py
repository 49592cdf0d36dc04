"""Sensors that start a job when new log files appear: the metering job (every minute) and the budget job (every
10 s, so that the entitlements API blocks a customer within seconds of the file that takes it past a budget).

They look at file names, sizes and modification times only (kept in each sensor's cursor), not at
the warehouse: DuckDB may be locked by a running job. Landing itself decides, by content
hash, what is really new.
"""

import hashlib
import json

import dagster as dg

from metering_dagster.defs.orchestration.automation import default_sensor_status
from metering_dagster.defs.orchestration.jobs import BUDGET_JOB_NAME, METERING_JOB_NAME, budget_job, metering_job
from metering_dagster.landing.land import list_log_files, new_or_changed
from metering_dagster.locks import RunLockBusy
from metering_dagster.settings import load_settings
from metering_dagster.transform.freshness import decide_before_run

# Both jobs write the one warehouse: while a run of either is queued or under way a sensor starts nothing, and
# keeps its cursor, so that the files it saw are seen again on its next tick.
WAREHOUSE_JOBS = (METERING_JOB_NAME, BUDGET_JOB_NAME)
UNFINISHED = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def unfinished_warehouse_run(instance: dg.DagsterInstance) -> dg.DagsterRun | None:
    """A run of the metering or the budget job that is queued or under way, if there is one."""
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=UNFINISHED)):
        if run.job_name in WAREHOUSE_JOBS:
            return run
    return None


def nothing_new_words() -> str | None:
    """`metering run`'s words when nothing is new since the last completed run (transform/freshness.py), else None:
    a run is due. `RunLockBusy` when a run holds the state folder."""
    freshness = decide_before_run(load_settings(), lock_wait_seconds=0)
    return freshness.words() if freshness.nothing_new else None


def _new_logs_sensor(
    name: str, job, interval_seconds: int, description: str, skip_when_nothing_new: bool = False
) -> dg.SensorDefinition:
    @dg.sensor(
        name=name,
        job=job,
        minimum_interval_seconds=interval_seconds,
        default_status=default_sensor_status(),
        description=description,
    )
    def _sensor(context: dg.SensorEvaluationContext):
        raw_dir = load_settings().raw_dir
        current = list_log_files(raw_dir)
        seen = json.loads(context.cursor) if context.cursor else {}
        changed = new_or_changed(current, seen)
        if not changed:
            return dg.SkipReason(f"no new log files under {raw_dir}")
        busy = unfinished_warehouse_run(context.instance)
        if busy is not None:
            return dg.SkipReason(
                f"{len(changed)} new or changed log files wait: run {busy.run_id[:8]} of {busy.job_name} is"
                f" {busy.status.value.lower()}"
            )
        if skip_when_nothing_new:
            try:
                words = nothing_new_words()
            except RunLockBusy as held:  # the cursor is kept: the files are seen again next tick
                return dg.SkipReason(f"{len(changed)} new or changed log files wait: {held}")
            if words is not None:  # e.g. a file touched, its content as landed
                context.update_cursor(json.dumps(current))
                return dg.SkipReason(words)
        run_key = hashlib.sha256(json.dumps({n: current[n] for n in changed}).encode()).hexdigest()[:16]
        context.update_cursor(json.dumps(current))
        return dg.RunRequest(run_key=run_key, tags={"metering/new_files": str(len(changed))})

    return _sensor


new_usage_logs_sensor = _new_logs_sensor(
    "new_usage_logs_sensor",
    metering_job,
    60,
    "Starts the metering job when new or changed *.jsonl(.gz) files appear under METERING_RAW_DIR (not when"
    " nothing is new since the last completed run: a file touched but as landed).",
    skip_when_nothing_new=True,
)

budget_usage_sensor = _new_logs_sensor(
    "budget_usage_sensor",
    budget_job,
    10,
    "Starts the budget job (no upload) when new or changed *.jsonl(.gz) files appear under METERING_RAW_DIR, so"
    " that the entitlements API answers from them within seconds.",
)

"""Run the metering job through the Dagster instance, the way the schedule does."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

from metering_dagster.billing.errors import stripe_problem_line
from metering_dagster.billing.retry import STATS
from metering_dagster.commands.outcome import BLOCKING_CHECK_NAMES, RunOutcome
from metering_dagster.commands.summary import warehouse_figures
from metering_dagster.display import count
from metering_dagster.locks import UPLOAD_POOL, pid_alive, run_lock
from metering_dagster.progress import ProgressDisplay
from metering_dagster.settings import load_settings


def metering_job():
    """Module-level so Dagster can reconstruct the job in the run's process."""
    # Imported here for start-up time: the Definitions load dagster, dagster-dbt and the dbt manifest, which
    # `metering query`, `explain` and the other commands never need.
    from metering_dagster.definitions import defs
    from metering_dagster.defs.orchestration.jobs import METERING_JOB_NAME

    return defs.resolve_job_def(METERING_JOB_NAME)


def budget_job():
    """Module-level, like metering_job: the light job behind `metering run --budgets` (no upload)."""
    from metering_dagster.definitions import defs
    from metering_dagster.defs.orchestration.jobs import BUDGET_JOB_NAME

    return defs.resolve_job_def(BUDGET_JOB_NAME)


# `metering run` runs the metering job; `metering run --budgets` the budget job.
JOBS = {"metering_job": metering_job, "budget_job": budget_job}


def say(message: str) -> None:
    """A line for the person at the terminal (stderr), e.g. why a command waits or stopped."""
    print(f"metering: {message}", file=sys.stderr, flush=True)


def execute_metering_job(
    tags: dict[str, str] | None = None, log_path: Path | None = None, job_name: str = "metering_job"
) -> RunOutcome:
    """Run the job (`job_name`: the metering job, or the budget job); dbt's progress lines go to `log_path` (the
    terminal gets the summary).

    The run holds the state folder's run lock throughout (`locks.run_lock`); a second run says
    who holds it, waits `METERING_LOCK_WAIT_SECONDS` and otherwise raises `RunLockBusy` without running.
    """
    import dagster as dg  # here for start-up time (see metering_job)

    from metering_dagster.defs.transform.project import prepare_manifest

    settings = load_settings()
    log_path = log_path or settings.state_dir / "logs" / "last_run.log"
    # A second run stops here with `RunLockBusy` (its one line says who holds the lock): no run, no summary.
    with run_lock(settings.state_dir, say=say):
        started_at = datetime.now(UTC)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        display = ProgressDisplay("metering run" if job_name == "metering_job" else "metering run --budgets")
        try:
            with open(log_path, "w") as log, contextlib.redirect_stdout(log), display.listen():
                display.update("preparing the dbt project (its first run in a checkout parses it: ~20 s)", start=True)
                prepare_manifest()
                outcome = _execute(dg, tags, RunProgress(display, started_at, job_name), job_name)
            display.update(f"finished in {time.monotonic() - display.started:.0f} s", done=True)
        finally:
            display.close()
        # Read before the lock is freed: a reader must never hold the warehouse a next run opens.
        outcome.figures = warehouse_figures(settings, run_started_at=started_at)
        return outcome


# What each long step is doing, in words; steps not named here (checks) are short.
STEP_WORDS = {
    "metering_contract": "reading the contract",
    "landed_usage_lines": "landing new usage files",
    "metering_dbt_models": "dbt: validating, deduplicating, aggregating and pricing",
    "stripe_billing_objects": "Stripe: finding or creating meters, prices, customers and subscriptions",
    "stripe_billing_alerts": "Stripe: billing alerts of the quantity budgets",
    "stripe_clock": "Stripe: reading its time (which billing period is current)",
    "budget_alerts": "budgets: alerts at their thresholds",
    "stripe_usage_report": "Stripe: sending meter events",
    "stripe_snapshot": "Stripe: reading back invoices and meter event summaries",
    "period_close": "closing billing periods",
    "reconciliation_dbt_models": "dbt: reconciling with Stripe",
    "analyst_marts": "publishing the analysts' copy",
    "closed_period_reconciliation": "reconciling closed periods",
}


def _step_result(step: str, metadata: dict[str, Any]) -> str | None:
    """What a finished step did, from its materialization's metadata."""
    if step == "landed_usage_lines":
        return (
            f"landed {count(int(metadata.get('files_landed', 0)), 'file')}, "
            f"{count(int(metadata.get('lines_landed', 0)), 'line')}"
        )
    if step == "stripe_usage_report":
        return f"{count(int(metadata.get('events_sent', 0)), 'meter event')} sent"
    if step == "budget_alerts":
        return f"{count(int(metadata.get('new_alerts', 0)), 'new alert')}"
    if step == "stripe_snapshot":
        return f"{count(int(metadata.get('customers_read', 0)), 'customer')} read back"
    return None


class RunProgress:
    """Follows the run in the Dagster instance's event log (a thread reading it twice a second) and tells
    `display` each long step as it starts and ends, dbt's models as they are built (n of N) and the Stripe
    requests made so far; landing reports its own progress (`progress.report`)."""

    POLL_SECONDS = 0.5

    def __init__(self, display, started_at: datetime, job_name: str = "metering_job"):
        self.display = display
        self.job_name = job_name
        self.started_at = started_at
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, name="run-progress", daemon=True)
        self._models: dict[str, int] = {}
        self._step: str | None = None
        self._step_text = ""
        self._step_started = 0.0
        self._built = 0
        self._requests_at_start = 0
        self._result_shown = False

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _follow(self) -> None:
        import dagster as dg

        try:
            with dg.DagsterInstance.get() as instance:
                self._models = _models_per_dbt_step(self.job_name)
                run_id, cursor = None, None
                while not self._stop.wait(self.POLL_SECONDS):
                    if run_id is None:
                        runs = instance.get_runs(
                            filters=dg.RunsFilter(
                                tags={"metering/pid": str(os.getpid())}, created_after=self.started_at
                            ),
                            limit=1,
                        )
                        run_id = runs[0].run_id if runs else None
                        continue
                    records = instance.get_records_for_run(run_id, cursor=cursor, limit=1000)
                    cursor = records.cursor
                    for record in records.records:
                        if record.event_log_entry.dagster_event is not None:
                            self._on_event(record.event_log_entry.dagster_event)
                    self._on_tick()
        except Exception as error:  # noqa: BLE001  progress is a courtesy: it never breaks or hides the run
            self.display.update(f"(progress display stopped: {error})", done=True)

    def _say(self, text: str, **kind) -> None:
        self._step_text = text
        self.display.update(text, **kind)

    def _on_event(self, event) -> None:
        kind, step = event.event_type_value, event.step_key or ""
        words = STEP_WORDS.get(step)
        if kind == "STEP_START" and not words:
            self.display.update(f"checking: {step}")
        elif kind == "STEP_START":
            self._step, self._built, self._step_started, self._result_shown = step, 0, time.monotonic(), False
            self._requests_at_start = STATS.requests
            dbt = f": 0 of {self._models[step]} models built (dbt starting)" if step in self._models else ""
            self._say(words + dbt, start=True)
        elif kind == "ASSET_MATERIALIZATION" and step in self._models:
            self._built += 1
            self._say(f"{words}: {self._built} of {self._models[step]} models built")
        elif kind == "ASSET_MATERIALIZATION" and words:
            metadata = {k: v.value for k, v in event.step_materialization_data.materialization.metadata.items()}
            result = _step_result(step, metadata)
            if result:
                self._say(f"{words}: {result}")
                self._result_shown = True
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE") and words:
            how = "done" if kind == "STEP_SUCCESS" else "failed"
            text = self._step_text if step == self._step else words
            self.display.update(f"{text}; {how} in {time.monotonic() - self._step_started:.0f} s", done=True)
            self._step = None

    def _on_tick(self) -> None:
        """During a Stripe step, the requests made so far (the steps log nothing until they end)."""
        sent = STATS.requests - self._requests_at_start
        if self._step and self._step.startswith("stripe_") and sent and not self._result_shown:
            self._say(f"{STEP_WORDS[self._step]} ({count(sent, 'Stripe request')} so far)")
        elif self._step and self.display.interactive:
            self.display.update(self._step_text)  # on a terminal the seconds go on counting


def _models_per_dbt_step(job_name: str = "metering_job") -> dict[str, int]:
    """How many dbt models each dbt step builds (the assets of its op that the job selects), for "n of N"."""
    job = JOBS[job_name]()
    selected = job.asset_layer.selected_asset_keys
    return {
        assets.node_def.name: len(assets.keys & selected)
        for assets in job.asset_layer.asset_graph.assets_defs
        if assets.is_executable and "dbt" in assets.node_def.name and assets.keys & selected
    }


def recover_dead_runs(instance) -> list[str]:
    """Runs of this instance left STARTED by a killed `metering run`: mark them failed, free their pool slots.

    Called with the run lock held, so no run of this state folder is alive: any run still
    marked started/starting belongs to a process that died.
    """
    import dagster as dg

    recovered = []
    records = instance.get_runs(
        filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING])
    )
    for run in records:
        if run.tags.get("metering/trigger") != "cli":
            continue
        pid = run.tags.get("metering/pid")
        if pid and pid.isdigit() and pid_alive(int(pid)) and int(pid) != os.getpid():
            continue
        instance.report_run_failed(run, "the process of this run died (killed); recovered by the next metering run")
        if instance.event_log_storage.supports_global_concurrency_limits:
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        recovered.append(run.run_id)
    return recovered


def _process_table() -> dict[int, tuple[int, list[str]]]:
    """pid -> (parent pid, argv) of every process we can read (Linux /proc); empty elsewhere."""
    table = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        table[int(entry.name)] = (ppid, [a.decode(errors="replace") for a in argv if a])
    return table


def _environ_of(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    return dict(item.decode(errors="replace").split("=", 1) for item in raw.split(b"\0") if b"=" in item)


def end_orphaned_dbt(state_dir: Path, *, grace_seconds: float = 5.0) -> list[int]:
    """End the dbt processes that a killed run left behind on this state folder; returns their pids.

    A run killed with SIGKILL cannot stop its dbt child, which goes on, holding the warehouse open. Called
    with the run lock held: a dbt process of this state folder whose parent is gone (re-parented to init or a
    subreaper, i.e. not a child of a live metering or Dagster process) belongs to a dead run. dbt processes of
    a live parent (a run started from the UI) are never touched.
    """
    import signal

    table = _process_table()
    live_parents = {pid for pid, (_, argv) in table.items() if any("metering" in a or "dagster" in a for a in argv)}
    state = str(Path(state_dir).resolve())
    orphans = []
    for pid, (ppid, argv) in table.items():
        if pid == os.getpid() or ppid in live_parents or not any(Path(a).name == "dbt" for a in argv[:2]):
            continue
        env_state = _environ_of(pid).get("METERING_STATE_DIR")
        if env_state and str(Path(env_state).resolve()) == state:
            orphans.append(pid)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in orphans:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace_seconds
        while sig == signal.SIGTERM and time.monotonic() < deadline and any(pid_alive(p) for p in orphans):
            time.sleep(0.1)
    return orphans


def _ensure_upload_pool(instance) -> None:
    storage = instance.event_log_storage
    if storage.supports_global_concurrency_limits and storage.get_concurrency_info(UPLOAD_POOL).slot_count != 1:
        storage.set_concurrency_slots(UPLOAD_POOL, 1)


def _execute(
    dg, tags: dict[str, str] | None, progress: RunProgress | None = None, job_name: str = "metering_job"
) -> RunOutcome:
    for pid in end_orphaned_dbt(load_settings().state_dir):
        say(f"ended dbt process {pid}, left running by a killed run (it held the warehouse)")
    with dg.DagsterInstance.get() as instance:
        for run_id in recover_dead_runs(instance):
            say(f"run {run_id[:8]} had been killed; marked failed, its upload slot freed, this run finishes its work")
        _ensure_upload_pool(instance)
        # followed from here on: the instance's storage exists (two first openings at once both create it)
        with progress or contextlib.nullcontext():
            result = dg.execute_job(
                dg.reconstructable(JOBS[job_name]),
                instance=instance,
                tags={"metering/trigger": "cli", "metering/pid": str(os.getpid()), **(tags or {})},
                # The terminal gets the summary, a failed step in one line; the full event log, tracebacks
                # included, is in the Dagster UI.
                run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}},
                raise_on_error=False,
            )
        return outcome_of(result)


def outcome_of(result) -> RunOutcome:
    outcome = RunOutcome(run_id=result.run_id, success=result.success)
    for event in result.get_asset_materialization_events():
        mat = event.step_materialization_data.materialization
        outcome.materialized[mat.asset_key.to_user_string()] = {k: v.value for k, v in mat.metadata.items()}
    for evaluation in result.get_asset_check_evaluations():
        if evaluation.passed:
            continue
        outcome.failed_checks.append(
            {
                "check": evaluation.check_name,
                "asset": evaluation.asset_key.to_user_string(),
                "blocking": evaluation.check_name in BLOCKING_CHECK_NAMES
                or bool(getattr(evaluation, "blocking", False)),
                "severity": getattr(getattr(evaluation, "severity", None), "value", "ERROR"),
                "description": evaluation.description or "",
                "metadata": {k: v.value for k, v in evaluation.metadata.items()},
            }
        )
    for event in result.get_step_success_events():
        outcome.step_seconds[event.step_key] = event.event_specific_data.duration_ms / 1000
    for event in result.get_step_failure_events():
        error = event.event_specific_data.error if event.event_specific_data else None
        outcome.failed_steps.append(f"{event.step_key}: {step_error_line(error)}")
    return outcome


def step_error_line(error) -> str:
    """One line for a failed step: the step's own error, not Dagster's wrapper around it ("Error occurred while
    executing op"), and for Stripe unreachable or a refused key the line that says what to check."""
    while error is not None and error.cause is not None and error.cls_name == "DagsterExecutionStepExecutionError":
        error = error.cause
    if error is None or not error.message:
        return "failed"
    stripe_line = stripe_problem_line(error.cls_name, error.message)
    if stripe_line:
        return stripe_line
    first = error.message.strip().splitlines()[0]
    if error.cls_name == "Failure":  # a step's own words (dg.Failure): without Dagster's class path
        first = first.removeprefix("dagster._core.definitions.events.Failure: ")
    return first

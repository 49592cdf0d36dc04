"""Run the metering job through the Dagster instance, the way the schedule does."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metering_dagster.settings import load_settings

BLOCKING_CHECK_NAMES = ("usage_upload_suite", "shadow_invoice_suite")


@dataclass
class RunOutcome:
    run_id: str
    success: bool
    materialized: dict[str, dict[str, Any]] = field(default_factory=dict)  # asset -> metadata values
    failed_checks: list[dict[str, Any]] = field(default_factory=list)
    failed_steps: list[str] = field(default_factory=list)
    step_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def withheld(self) -> bool:
        """A blocking quality check failed, so the Stripe upload did not run."""
        return any(c["blocking"] for c in self.failed_checks) and "stripe_usage_report" not in self.materialized


def metering_job():
    """Module-level so Dagster can reconstruct the job in the run's process."""
    from metering_dagster.definitions import defs
    from metering_dagster.defs.orchestration.jobs import METERING_JOB_NAME

    return defs.resolve_job_def(METERING_JOB_NAME)


def execute_metering_job(tags: dict[str, str] | None = None, log_path: Path | None = None) -> RunOutcome:
    """Run the job; dbt's progress lines go to `log_path` (the terminal gets the summary)."""
    import dagster as dg

    from metering_dagster.defs.transform.project import prepare_manifest

    log_path = log_path or load_settings().state_dir / "logs" / "last_run.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log, contextlib.redirect_stdout(log):
        prepare_manifest()
        return _execute(dg, tags)


def _execute(dg, tags: dict[str, str] | None) -> RunOutcome:
    with dg.DagsterInstance.get() as instance:
        result = dg.execute_job(
            dg.reconstructable(metering_job),
            instance=instance,
            tags={"metering/trigger": "cli", **(tags or {})},
            # The terminal gets the summary; the full event log is in the Dagster UI.
            run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}},
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
                "blocking": evaluation.check_name in BLOCKING_CHECK_NAMES or bool(getattr(evaluation, "blocking", False)),
                "description": evaluation.description or "",
                "metadata": {k: v.value for k, v in evaluation.metadata.items()},
            }
        )
    for event in result.get_step_success_events():
        outcome.step_seconds[event.step_key] = event.event_specific_data.duration_ms / 1000
    for event in result.get_step_failure_events():
        error = event.event_specific_data.error if event.event_specific_data else None
        message = error.message.strip().splitlines()[0] if error and error.message else "failed"
        outcome.failed_steps.append(f"{event.step_key}: {message}")
    return outcome

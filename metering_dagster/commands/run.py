"""`metering run`: the metering job once through the Dagster instance, its summary, its exit code."""

from __future__ import annotations

from metering_dagster.commands.common import (
    EXIT_ATTENTION,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_WITHHELD,
    check_contract,
    prepare_environment,
)
from metering_dagster.commands.outcome import RunOutcome
from metering_dagster.commands.runner import execute_metering_job, say
from metering_dagster.commands.summary import print_nothing_new, print_run_summary
from metering_dagster.settings import Settings
from metering_dagster.transform.freshness import FORCE_TAG, decide_before_run


def run_once(settings: Settings, quiet: bool = False, budgets_only: bool = False, force: bool = False) -> int:
    """Run the metering job once through a Dagster instance, print its summary, return the exit code.

    `budgets_only` (`metering run --budgets`) runs the budget job instead: land, read Stripe's clock, build the
    budget marts, send the budget alerts, publish for the entitlements API; nothing is sent to Stripe.
    `force` (`metering run --force`): the work even when nothing is new since the last completed run.
    """
    prepare_environment(settings)
    bad = check_contract(settings)
    if bad is not None:
        return bad
    if not budgets_only and not force:
        # Decided before loading Dagster, whose start costs seconds. A run with nothing new starts no Dagster run
        # (DECISIONLOG.md "A run with nothing new"); the schedule and the sensor skip with the same words.
        freshness = decide_before_run(settings, say=say)
        if freshness.nothing_new:
            if not quiet:
                print_nothing_new(freshness.words(), settings)
            return EXIT_OK
    outcome = execute_metering_job(
        tags={FORCE_TAG: "true"} if force else None, job_name="budget_job" if budgets_only else "metering_job"
    )
    if not quiet:
        print_run_summary(outcome, settings, budget_run=budgets_only)
        print_period_close(outcome)
    return exit_code(outcome)


def exit_code(outcome: RunOutcome) -> int:
    """A crash wins over a withheld upload, which wins over a completed run that needs attention."""
    if outcome.crashed_steps or (not outcome.success and not outcome.withheld):
        return EXIT_FAILED
    if outcome.withheld:
        return EXIT_WITHHELD
    return EXIT_ATTENTION if outcome.attention else EXIT_OK


def print_period_close(outcome: RunOutcome) -> None:
    """Period close's report: final uploads inside the grace period, holds, releases, adjustments."""
    report = outcome.materialized.get("period_close", {}).get("report")
    if report:
        for line in str(report).splitlines():
            print(f"  {line}")

"""What `metering run` says and returns: a crash is never hidden behind a withheld upload, a run that did not
complete shows no figures of an earlier run, a completed run with a failed ERROR check needs attention."""

from __future__ import annotations

from datetime import UTC, datetime

from metering_dagster.commands.common import (
    EXIT_ATTENTION,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_WITHHELD,
)
from metering_dagster.commands.outcome import RunOutcome
from metering_dagster.commands.run import exit_code
from metering_dagster.commands.summary import print_run_summary
from metering_dagster.settings import Settings

BLOCKED = {
    "check": "usage_upload_suite",
    "asset": "marts/fct_usage_by_period",
    "blocking": True,
    "severity": "ERROR",
    "description": "withheld",
    "metadata": {"failing_customers": "cus_a"},
}
DIFFERENCE = {
    "check": "stripe_matches_shadow_invoice",
    "asset": "marts/rpt_reconciliation",
    "blocking": False,
    "severity": "ERROR",
    "description": "1 of 4 lines differ",
    "metadata": {"customers_with_differences": "cus_b"},
}
GATE_HELD = {
    "check": "usage_upload_suite",
    "asset": "marts/fct_usage_by_period",
    "blocking": True,
    "severity": "WARN",
    "description": "1 customer held: cus_d quantity_too_precise",
    "metadata": {"failing_customers": "cus_d"},
}
HELD = {
    "check": "no_invoice_held",
    "asset": "period_close",
    "blocking": False,
    "severity": "WARN",
    "description": "1 invoice held",
    "metadata": {"customers": "cus_c"},
}
FIGURES = {"lines_landed_total": 10, "currency": "usd", "invoice_cents": 0, "reconciliation": {"match": 3}}


def outcome(success: bool, checks=(), steps=(), materialized=()) -> RunOutcome:
    return RunOutcome(
        run_id="0123456789",
        success=success,
        failed_checks=list(checks),
        failed_steps=list(steps),
        materialized={k: {} for k in materialized},
        figures=dict(FIGURES),
    )


def test_a_crash_in_a_withheld_run_exits_1_not_2():
    withheld_only = outcome(False, [BLOCKED], ["usage_gate: 1 blocking asset check failed with ERROR severity:"])
    assert exit_code(withheld_only) == EXIT_WITHHELD
    crashed = outcome(
        False,
        [BLOCKED],
        [
            "usage_gate: 1 blocking asset check failed with ERROR severity:",
            "period_close: duckdb.IOException: disk full",
        ],
    )
    assert exit_code(crashed) == EXIT_FAILED


def test_a_completed_run_with_a_failed_error_check_needs_attention():
    assert exit_code(outcome(True)) == EXIT_OK
    assert exit_code(outcome(True, [HELD])) == EXIT_OK  # a WARN check is the contract at work
    assert exit_code(outcome(True, [HELD, DIFFERENCE])) == EXIT_ATTENTION
    # a gate that held one customer back (WARN) let the others through: the run completed, one customer was not
    gate = outcome(True, [GATE_HELD], materialized=["stripe_usage_report"])
    assert not gate.withheld and exit_code(gate) == EXIT_ATTENTION


def test_a_failed_run_prints_no_figures_of_an_earlier_run(tmp_path, capsys):
    settings = Settings(state_dir=tmp_path, raw_dir=tmp_path, contract_path=tmp_path / "m.yml")
    print_run_summary(outcome(False, steps=["metering_dbt_models: dbt failed"]), settings)
    out = capsys.readouterr().out
    assert "failed" in out.splitlines()[0] and "3 of 3 lines match" not in out and "lines landed" not in out
    assert "no figures: this run did not complete" in out and "all passed" not in out

    # a withheld run did not reconcile: the reconciliation shown would be an earlier run's
    print_run_summary(outcome(False, [BLOCKED], ["gate: 1 blocking asset check failed"]), settings)
    out = capsys.readouterr().out
    assert "withheld the upload" in out and "10 lines landed (all runs)" in out and "match" not in out

    print_run_summary(outcome(True, materialized=["marts/rpt_reconciliation"]), settings)
    assert "reconciliation  3 of 3 lines match Stripe" in capsys.readouterr().out


def test_the_summary_names_the_test_clock_when_it_is_behind_the_data(tmp_path, capsys):
    settings = Settings(state_dir=tmp_path, raw_dir=tmp_path, contract_path=tmp_path / "m.yml")
    run = outcome(True, [DIFFERENCE], materialized=["marts/rpt_reconciliation"])
    run.figures.update(
        _deferred_to_future=7,
        _latest_deferred=datetime(2026, 11, 3, 10, tzinfo=UTC),
        _stripe_clock=datetime(2026, 11, 1, tzinfo=UTC),
    )
    print_run_summary(run, settings)
    out = capsys.readouterr().out
    assert "completed, but needs attention" in out
    assert "Stripe's test clock (at 2026-11-01T00:00:00+00:00) is behind the data: 7 meter events" in out
    assert "`metering clock advance --to 2026-11-03T10:00:00+00:00`" in out
    assert "_deferred_to_future" not in out

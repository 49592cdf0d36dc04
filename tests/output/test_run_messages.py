"""What `metering run` and `metering clock advance` print: a short summary table with money in the contract's
currency, and one line (no traceback, no key) when another run holds the state folder or Stripe cannot be
reached."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import dagster as dg
import stripe
from dagster._core.errors import DagsterExecutionStepExecutionError
from dagster._utils.error import serializable_error_info_from_exc_info

from metering_dagster.commands.outcome import RunOutcome
from metering_dagster.commands.runner import step_error_line
from metering_dagster.commands.summary import print_run_summary
from metering_dagster.locks import run_lock
from metering_dagster.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
METERING = [sys.executable, "-m", "metering_dagster.cli"]
KEY = "sk_test_outputmessages0123456789"

LANDING = {
    "landing_run_id": 1,
    "files_landed": 3,
    "files_appended": 0,
    "files_skipped": 0,
    "files_changed_refused": 0,
    "refused_files": "-",
    "files_failed": 0,
    "files_incomplete_waiting": 1,
    "lines_read": 3016,
    "lines_landed": 3016,
    "lines_quarantined_at_landing": 0,
    "lines_blank": 0,
}
UPLOAD = {
    "events_written": 24,
    "events_sent": 24,
    "duplicates": 0,
    "requests": 1,
    "deferred": 0,
    "failed": 0,
    "dead_lettered": 0,
    "withheld_customers": 0,
    "held_customers": "-",
    "awaiting_confirmation": 24,
}
FIGURES = {
    "currency": "usd",
    "lines_landed_total": 3016,
    "quarantined": 9,
    "duplicates": 1,
    "invoice_lines": 24,
    "invoice_cents": 93459,
    "customers_sent": 4,
    "reconciliation": {"match": 22, "quantity_mismatch": 2},
}
DIFFERENCE = {
    "check": "stripe_matches_shadow_invoice",
    "asset": "marts/rpt_reconciliation",
    "blocking": False,
    "severity": "ERROR",
    "description": "2 of 24 lines differ",
    "metadata": {"customers_with_differences": "cus_acme, cus_globex"},
}


def settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path, raw_dir=tmp_path, contract_path=tmp_path / "metering.yml")


def test_the_summary_is_a_short_table_with_money_in_the_contract_currency(tmp_path, capsys):
    run = RunOutcome(
        run_id="fcd91aed-1234",
        success=True,
        failed_checks=[DIFFERENCE],
        figures=dict(FIGURES),
        materialized={"landed_usage_lines": LANDING, "stripe_usage_report": UPLOAD, "marts/rpt_reconciliation": {}},
    )
    print_run_summary(run, settings(tmp_path))
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "metering run fcd91aed completed, but needs attention"
    assert "  landed          3 files, 3,016 lines (1 file waiting until it stops changing)" in lines
    assert "  uploaded        24 meter events sent for 4 customers" in lines
    assert "  warehouse       3,016 lines landed (all runs), 9 quarantined, 1 duplicate" in lines
    assert "  shadow invoice  934.59 USD over 24 lines" in lines
    assert "  reconciliation  22 of 24 lines match Stripe; 2 quantity mismatch" in lines
    assert "  checks          1 check failed" in lines
    assert (
        "    check stripe_matches_shadow_invoice on marts/rpt_reconciliation failed: 2 of 24 lines differ "
        "(customers: cus_acme, cus_globex)"
    ) in lines
    # no cents, no key=value dumps of the step metadata
    assert "cents" not in out and "=" not in out and "events_sent" not in out


def test_the_summary_names_a_checks_customers_once_and_the_budgets(tmp_path, capsys):
    held = {
        "check": "no_invoice_held",
        "asset": "period_close",
        "blocking": False,
        "severity": "WARN",
        "description": "1 invoices held until their sources are complete: cus_b",
        "metadata": {"customers": "cus_b"},
    }
    run = RunOutcome(
        run_id="0123456789",
        success=True,
        failed_checks=[held],
        figures={**FIGURES, "blocked": ["cus_globex"]},
        materialized={
            "marts/rpt_reconciliation": {},
            "budget_alerts": {"new_alerts": 3, "receiver": "https://hooks.example", "delivered": 2, "failed": 1},
        },
    )
    print_run_summary(run, settings(tmp_path))
    lines = capsys.readouterr().out.splitlines()
    assert (
        "    check no_invoice_held on period_close failed: 1 invoices held until their sources are complete: cus_b"
        in (lines)
    )
    assert (
        "  budgets         3 new alerts, 2 alerts delivered, 1 waiting for the receiver; 1 customer blocked: cus_globex"
        in (lines)
    )


def test_the_summary_says_alerts_are_only_recorded_without_a_webhook(tmp_path, capsys):
    run = RunOutcome(
        run_id="0123456789",
        success=True,
        figures=dict(FIGURES),
        materialized={"marts/rpt_reconciliation": {}, "budget_alerts": {"new_alerts": 1, "webhook": "not set"}},
    )
    print_run_summary(run, settings(tmp_path))
    lines = capsys.readouterr().out.splitlines()
    assert "  budgets         1 new alert (recorded: no METERING_WEBHOOK_URL); 0 customers blocked" in lines


def test_the_summary_shows_a_zero_decimal_currency_in_whole_units(tmp_path, capsys):
    run = RunOutcome(
        run_id="0123456789",
        success=True,
        figures={**FIGURES, "currency": "jpy", "invoice_cents": 93459},
        materialized={"marts/rpt_reconciliation": {}},
    )
    print_run_summary(run, settings(tmp_path))
    out = capsys.readouterr().out
    assert "  shadow invoice  93,459 JPY over 24 lines" in out.splitlines()
    assert "  checks          all passed" in out.splitlines()


def _step_failure(error: Exception):
    """The error info Dagster records for a step whose code raised `error`."""
    try:
        try:
            raise error
        except Exception as cause:
            raise DagsterExecutionStepExecutionError(
                'Error occurred while executing op "stripe_billing_objects":',
                user_exception=cause,
                original_exc_info=sys.exc_info(),
                step_key="x",
                op_name="x",
                op_def_name="x",
            ) from cause
    except DagsterExecutionStepExecutionError:
        return serializable_error_info_from_exc_info(sys.exc_info())


def test_a_failed_step_is_its_own_error_in_one_line_and_stripe_unreachable_says_what_to_check(monkeypatch):
    monkeypatch.setenv("STRIPE_API_KEY", KEY)
    monkeypatch.setenv("STRIPE_API_BASE", "http://127.0.0.1:9")
    unreachable = stripe.APIConnectionError(
        "Unexpected error communicating with Stripe.  If this problem persists,\nlet us know at support@stripe.com."
        "\n\n(Network error: ConnectionError: Failed to establish a new connection: [Errno 111] Connection refused)"
    )
    line = step_error_line(_step_failure(unreachable))
    assert line.startswith(
        "Stripe could not be reached at http://127.0.0.1:9 (connection refused, after retrying): check the network"
    ), line
    assert "\n" not in line and KEY not in line and "Dagster" not in line

    refused = stripe.AuthenticationError(f"Invalid API Key provided: {KEY[:12]}****6789")
    line = step_error_line(_step_failure(refused))
    assert line.startswith(
        "Stripe at http://127.0.0.1:9 refused the key (authentication failed): check that STRIPE_API_KEY"
    ), line
    assert KEY[:12] not in line

    # any other error: its own first line, not Dagster's wrapper around it; a step's own dg.Failure its words
    assert step_error_line(_step_failure(OSError("disk full\nmore"))) == "OSError: disk full"
    try:
        raise dg.Failure(description="the warehouse is held by process 12: stop it")
    except dg.Failure:
        assert (
            step_error_line(serializable_error_info_from_exc_info(sys.exc_info()))
            == "the warehouse is held by process 12: stop it"
        )


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*METERING, *args], check=False, env=env, capture_output=True, text=True, timeout=300, cwd=REPO_ROOT
    )


def test_a_second_run_prints_the_lock_holder_in_one_line_and_no_summary(metering_env):
    env = dict(os.environ, METERING_LOCK_WAIT_SECONDS="0")
    with run_lock(metering_env["state"]):
        second = _run("run", env=env)
    assert second.returncode == 1, second.stdout + second.stderr
    assert second.stdout == "", second.stdout  # no summary of a run that never started ("metering run not-star")
    lines = second.stderr.splitlines()
    assert len(lines) == 1, second.stderr
    assert lines[0].startswith(f"metering: stopped: another metering run (pid {os.getpid()} on "), lines[0]
    assert "Try again when it has finished" in lines[0]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens on it once the socket is closed


def test_clock_advance_with_stripe_unreachable_prints_one_line_without_the_key(metering_env):
    base = f"http://127.0.0.1:{_closed_port()}"
    env = dict(os.environ, STRIPE_API_KEY=KEY, STRIPE_API_BASE=base)
    result = _run("clock", "advance", "--to", "2026-11-01T00:30:00Z", env=env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.splitlines() == [
        (
            f"metering: Stripe could not be reached at {base} (connection refused, after retrying): check the network, "
            "a proxy or firewall, and STRIPE_API_BASE (unset: Stripe itself); then run the command again"
        )
    ], result.stderr
    assert "Traceback" not in result.stderr and KEY not in result.stdout + result.stderr


def test_clock_advance_says_where_the_test_clock_is_while_it_moves(metering_env):
    result = _run("clock", "advance", "--to", "2027-01-01T00:30:00Z", env=dict(os.environ))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr.splitlines()[0] == (
        "metering clock advance: Stripe test clock at 2026-10-01T00:00:00+00:00: moving to 2026-11-01T00:00:00+00:00 "
        "(target 2027-01-01T00:30:00+00:00, a month at a time)"
    ), result.stderr
    assert len(result.stderr.splitlines()) <= 4  # a few lines, not one per step
    assert "advanced from 2026-10-01T00:00:00+00:00 to 2027-01-01T00:30:00+00:00 in 4 step(s)" in result.stdout


def test_the_late_usage_adjustments_line_shows_money_in_the_contract_currency():
    from types import SimpleNamespace

    from metering_dagster.periods.adjustments import AdjustmentResult

    result = AdjustmentResult(
        planned=[SimpleNamespace(amount_cents=626), SimpleNamespace(amount_cents=-100)], sent=2, currency="eur"
    )
    assert result.summary().startswith("late-usage adjustments: 2 new (+5.26 EUR), 2 invoice items created")


def test_the_period_close_line_counts_agree_with_their_nouns():
    from metering_dagster.periods.close import PeriodCloseResult

    line = PeriodCloseResult(finalized=1, superseded=2).lines()[0]
    assert line.endswith(": 1 period invoice final, 2 meter events superseded by adjustments"), line


def test_a_warehouse_held_after_the_run_gives_a_line_not_a_traceback(tmp_path, capsys, monkeypatch):
    from metering_dagster.commands.summary import warehouse_figures
    from metering_dagster.warehouse import connect

    monkeypatch.setenv("METERING_WAREHOUSE_WAIT_SECONDS", "0")
    connect(tmp_path / "warehouse.duckdb").close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('open', flush=True); time.sleep(30)",
            str(tmp_path / "warehouse.duckdb"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        figures = warehouse_figures(settings(tmp_path))
    finally:
        holder.kill()
        holder.wait()
    assert f"process {holder.pid}" in figures["_unreadable"]
    print_run_summary(RunOutcome(run_id="0123456789", success=True, figures=figures), settings(tmp_path))
    out = capsys.readouterr().out
    assert "  no figures: the warehouse could not be read after the run: " in out and "Traceback" not in out

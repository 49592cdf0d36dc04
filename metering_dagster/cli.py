"""`metering`: run the pipeline once, play the demo, move the test clock.

    metering run                      the metering job once, recorded in $DAGSTER_HOME
    metering demo                     reset the demo state and tell the whole story
    metering clock advance --to TIME  move the shared Stripe test clock (test mode only)
    metering corrections preview      the money each customer would gain or lose from what has arrived
    metering explain --customer ID --period START [--as-of TIME]   explain one invoice
    metering query SQL [--format table|csv|json]   SQL on the analysts' read-only copy of the marts
    metering bench --events N         the benchmark (see docs/BENCHMARK.md)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from datetime import datetime, timezone

from metering_dagster.settings import Settings, SettingsError, load_settings, lock_wait_seconds

EXIT_OK, EXIT_FAILED, EXIT_WITHHELD, EXIT_BAD_CONTRACT, EXIT_ATTENTION = 0, 1, 2, 3, 4


def _prepare_environment(settings: Settings) -> None:
    """Dagster's instance lives in DAGSTER_HOME; default it under the state folder."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("METERING_STATE_DIR", str(settings.state_dir))
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text("telemetry:\n  enabled: false\n")


@contextlib.contextmanager
def _holding_state(settings: Settings):
    """Hold the run lock while a command writes the warehouse (`clock advance`).

    DuckDB locks its file against every other process, so such a command waits for a running
    `metering run` (up to METERING_LOCK_WAIT_SECONDS, default 600) instead of making it fail.
    The commands that only read (`explain`, `corrections preview`, `query`) never take it: they
    read the copies each run publishes (reader_copy.py, publish.py).
    """
    from metering_dagster.locks import run_lock
    from metering_dagster.runner import say

    wait = lock_wait_seconds(600)
    with run_lock(settings.state_dir, wait_seconds=wait, say=say):
        yield


def _check_contract(settings: Settings) -> int | None:
    from metering_dagster.contract import ContractError, load_contract

    try:
        load_contract(settings.contract_path)
    except ContractError as error:
        print(f"metering: the contract does not validate ({len(error.errors)} errors):", file=sys.stderr)
        for line in error.errors:
            print(f"  - {line}", file=sys.stderr)
        return EXIT_BAD_CONTRACT
    return None


def run_once(settings: Settings, quiet: bool = False) -> int:
    """Run the metering job once through a Dagster instance, print its summary, return the exit code."""
    from metering_dagster.runner import execute_metering_job
    from metering_dagster.summary import print_run_summary

    _prepare_environment(settings)
    bad = _check_contract(settings)
    if bad is not None:
        return bad
    outcome = execute_metering_job()
    if not quiet:
        print_run_summary(outcome, settings)
        print_period_close(outcome)
    return exit_code(outcome)


def exit_code(outcome) -> int:
    """A crash wins over a withheld upload, which wins over a completed run that needs attention."""
    if outcome.crashed_steps or (not outcome.success and not outcome.withheld):
        return EXIT_FAILED
    if outcome.withheld:
        return EXIT_WITHHELD
    return EXIT_ATTENTION if outcome.attention else EXIT_OK


def print_period_close(outcome) -> None:
    """Period close's report: final uploads inside the grace period, holds, releases, adjustments."""
    report = outcome.materialized.get("period_close", {}).get("report")
    if report:
        for line in str(report).splitlines():
            print(f"  {line}")


def corrections_preview(settings: Settings) -> int:
    from metering_dagster.periods.corrections import preview_corrections, print_preview
    from metering_dagster.progress import ProgressDisplay
    from metering_dagster.reader_copy import ReaderCopyMissing

    _prepare_environment(settings)
    bad = _check_contract(settings)
    if bad is not None:
        return bad
    display = ProgressDisplay("metering corrections preview")
    try:
        with display.listen():
            preview = preview_corrections(settings)  # from the reader copy: never waits for a run
    except ReaderCopyMissing as missing:
        print(f"metering: {missing}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        display.close()
    print_preview(preview)
    return EXIT_OK


def explain_invoice(settings: Settings, customer: str, period: datetime, as_of: datetime | None) -> int:
    from metering_dagster.periods.explain import explain, print_explanation
    from metering_dagster.reader_copy import ReaderCopyMissing

    _prepare_environment(settings)
    try:  # from the reader copy: never waits for a run
        explanation = explain(settings, customer, period.strftime("%Y-%m-%dT%H:%M:%S+00:00"), as_of)
    except ReaderCopyMissing as missing:
        print(f"metering: {missing}", file=sys.stderr)
        return EXIT_FAILED
    print_explanation(explanation)
    return EXIT_OK if explanation.lines else EXIT_FAILED


def advance_clock(settings: Settings, to: datetime) -> int:
    from metering_dagster.billing.clock import ClockError, advance_test_clock
    from metering_dagster.billing.client import open_stripe
    from metering_dagster.contract import load_contract
    from metering_dagster.progress import ProgressDisplay
    from metering_dagster.warehouse import connect

    _prepare_environment(settings)
    bad = _check_contract(settings)
    if bad is not None:
        return bad
    contract = load_contract(settings.contract_path)
    display = ProgressDisplay("metering clock advance")
    with _holding_state(settings), open_stripe(settings, contract) as conn, display.listen():
        con = connect(settings.warehouse_path)
        try:
            moved = advance_test_clock(conn.client, con, contract, to)
        except ClockError as error:
            print(f"metering: {error}", file=sys.stderr)
            return EXIT_FAILED
        finally:
            con.close()
            display.close()
    print(moved.summary())
    return EXIT_OK


def _parse_time(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r}: give an offset, e.g. 2026-11-01T03:00:00Z")
    return value.astimezone(timezone.utc)


def _parse_period(text: str) -> datetime:
    if len(text) == 10:  # a date: midnight UTC
        text += "T00:00:00Z"
    return _parse_time(text)


def query_marts(settings: Settings, sql: str, fmt: str = "table") -> int:
    """Write the result of `sql` on analytics.duckdb, opened read-only, as a table, CSV or JSON (query_output.py)."""
    import duckdb

    from metering_dagster.query_output import write_result

    if not settings.analytics_path.exists():
        print(f"metering: {settings.analytics_path} does not exist yet: run `metering run` first", file=sys.stderr)
        return EXIT_FAILED
    con = duckdb.connect(str(settings.analytics_path), read_only=True)
    try:
        write_result(con.execute(sql), fmt, sys.stdout)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader stopped reading (`| head`): what it took is what it wanted; nothing more to say.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except duckdb.Error as error:
        print(f"metering: {error}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        con.close()
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="metering", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="run the metering job once for what has arrived")
    sub.add_parser("demo", help="reset the demo state and run the demo story on the shipped data")
    bench = sub.add_parser("bench", help="generated usage at volume through the pipeline, against the DuckDB floor")
    bench.add_argument("--events", type=int, default=1_000_000)
    bench.add_argument("--keep", action="store_true", help="keep the generated logs")
    clock = sub.add_parser("clock", help="the shared Stripe test clock (test mode)")
    clock_sub = clock.add_subparsers(dest="clock_command", required=True)
    advance = clock_sub.add_parser("advance", help="advance the test clock")
    advance.add_argument("--to", required=True, type=_parse_time, help="RFC 3339 time with offset")
    corrections = sub.add_parser("corrections", help="corrections and late usage, before they are uploaded")
    corrections_sub = corrections.add_subparsers(dest="corrections_command", required=True)
    corrections_sub.add_parser("preview", help="the money each customer would gain or lose, per period and meter")
    explain_p = sub.add_parser("explain", help="explain every line of one customer's invoice for one period")
    explain_p.add_argument("--customer", required=True, help="the contract's customer id")
    explain_p.add_argument("--period", required=True, type=_parse_period, help="the period start (RFC 3339 or a date)")
    explain_p.add_argument("--as-of", type=_parse_time, help="rebuild from the lines landed up to this time")
    query = sub.add_parser("query", help="SQL on the analysts' read-only copy of the marts (safe during a run)")
    query.add_argument("sql", help='e.g. "select * from marts.rpt_reconciliation"')
    query.add_argument("--format", choices=("table", "csv", "json"), default="table",
                       help="table (every column; a wide result one row at a time), csv or json (exact decimals as text)")
    args = parser.parse_args(argv)

    try:
        settings = load_settings()
    except SettingsError as error:  # a bad METERING_* value: named, no traceback
        for problem in error.problems:
            print(f"metering: {problem}", file=sys.stderr)
        return EXIT_FAILED
    from metering_dagster.billing.errors import stripe_problem
    from metering_dagster.locks import RunLockBusy

    try:
        return _dispatch(parser, args, settings)
    except RunLockBusy as busy:  # another run holds the state folder: its one line, no summary
        print(f"metering: {busy}", file=sys.stderr)
        return EXIT_FAILED
    except Exception as error:  # Stripe unreachable or the key refused: one line, what to check; else the traceback
        problem = stripe_problem(error)
        if problem is None:
            raise
        print(f"metering: {problem}", file=sys.stderr)
        return EXIT_FAILED


def _dispatch(parser: argparse.ArgumentParser, args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "run":
        return run_once(settings)
    if args.command == "clock":
        return advance_clock(settings, args.to)
    if args.command == "corrections":
        return corrections_preview(settings)
    if args.command == "explain":
        return explain_invoice(settings, args.customer, args.period, args.as_of)
    if args.command == "query":
        return query_marts(settings, args.sql, args.format)
    if args.command == "bench":
        import json

        from metering_dagster.bench.run import run_bench

        print(json.dumps(run_bench(args.events, keep=args.keep), indent=2))
        return EXIT_OK
    if args.command == "demo":
        from metering_dagster.demo import DemoRefused, run_demo

        try:
            return run_demo(settings, advance_clock, run_once)
        except DemoRefused as refused:  # nothing was deleted: one line, no traceback
            print(f"metering demo: {refused}", file=sys.stderr)
            return EXIT_FAILED
    parser.error(f"unknown command {args.command}")
    return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())

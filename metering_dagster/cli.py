"""`metering`: run the pipeline once, play the demo, move the test clock.

    metering run                      the metering job once, recorded in $DAGSTER_HOME
    metering run --budgets            the budget job once: budgets and the entitlements API only, no upload
    metering run --force              the metering job even when nothing is new since the last completed run
    metering demo                     reset the demo state and tell the whole story
    metering clock advance --to TIME  move the shared Stripe test clock (test mode only)
    metering corrections preview      the money each customer would gain or lose from what has arrived
    metering explain --customer ID --period START [--as-of TIME]   explain one invoice
    metering query SQL [--format table|csv|json]   SQL on the analysts' read-only copy of the marts
    metering bench --events N         the benchmark (see docs/BENCHMARK.md)
    metering serve [--host H] [--port P]   the entitlements API and the usage console (needs METERING_API_TOKEN)
    metering tokens create --customer ID | list | revoke ID   console tokens that see one customer only

Argument parsing and dispatch only: each command is a plain function in `commands/`.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime

from metering_dagster.billing.errors import stripe_problem
from metering_dagster.commands.clock import advance_clock
from metering_dagster.commands.common import EXIT_FAILED, EXIT_OK
from metering_dagster.commands.corrections import corrections_preview
from metering_dagster.commands.explain import explain_invoice
from metering_dagster.commands.query import query_marts
from metering_dagster.commands.run import run_once
from metering_dagster.locks import RunLockBusy
from metering_dagster.settings import Settings, SettingsError, load_settings


def _parse_time(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r}: give an offset, e.g. 2026-11-01T03:00:00Z")
    return value.astimezone(UTC)


def _parse_period(text: str) -> datetime:
    if len(text) == 10:  # a date: midnight UTC
        text += "T00:00:00Z"
    return _parse_time(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="metering", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="run the metering job once for what has arrived")
    # `metering run --budgets`: the light budget job (commands/run.py)
    run_p.add_argument(
        "--budgets",
        action="store_true",
        help="only budgets: land, build the budget marts, alert, publish for `metering serve`; send nothing to Stripe",
    )
    # `metering run --force`: the work even when nothing is new since the last completed run (transform/freshness.py)
    run_p.add_argument("--force", action="store_true", help="do the work even when nothing is new since the last run")
    sub.add_parser("demo", help="reset the demo state and run the demo story on the shipped data")
    bench = sub.add_parser("bench", help="generated usage at volume through the pipeline, against the DuckDB floor")
    bench.add_argument("--events", type=int, default=1_000_000)
    bench.add_argument("--keep", action="store_true", help="keep the generated logs")
    # the hard-stop latency: a file past a block budget -> `metering serve` answers block (commands/bench/latency.py)
    bench.add_argument("--latency-only", action="store_true", help="build the warehouse, then measure only the latency")
    bench.add_argument("--crossings", type=int, default=10, help="customers taken past the block budget (0: none)")
    bench.add_argument("--poll-interval", type=float, default=10.0, help="seconds between looks at the raw folder")
    bench.add_argument("--spark", action="store_true", help="also time the dbt build on Spark (METERING_SPARK_MASTER)")
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
    query.add_argument(
        "--format",
        choices=("table", "csv", "json"),
        default="table",
        help="table (every column; a wide result one row at a time), csv or json (exact decimals as text)",
    )
    # `metering serve`: the entitlements API over the analysts' copy (commands/serve.py)
    serve_p = sub.add_parser("serve", help="the entitlements API over HTTP (needs METERING_API_TOKEN)")
    serve_p.add_argument("--host", default="127.0.0.1", help="the address to listen on (default 127.0.0.1)")
    serve_p.add_argument("--port", type=int, default=8787, choices=range(65536), metavar="PORT", help="default 8787")
    # `metering tokens`: per-customer console tokens, stored hashed in the state folder (commands/tokens.py)
    tokens_p = sub.add_parser("tokens", help="console tokens that see one customer only").add_subparsers(
        dest="tokens_command", required=True
    )
    tokens_p.add_parser("create", help="make a token for one customer; printed once").add_argument(
        "--customer", required=True, help="the contract's customer id"
    )
    tokens_p.add_parser("list", help="the tokens' ids and customers (never a token)")
    tokens_p.add_parser("revoke", help="remove a token (its id) or every token of a customer").add_argument("id")
    args = parser.parse_args(argv)

    try:
        settings = load_settings()
    except SettingsError as error:  # a bad METERING_* value: named, no traceback
        for problem in error.problems:
            print(f"metering: {problem}", file=sys.stderr)
        return EXIT_FAILED

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
        return run_once(settings, budgets_only=args.budgets, force=args.force)
    if args.command == "clock":
        return advance_clock(settings, args.to)
    if args.command == "corrections":
        return corrections_preview(settings)
    if args.command == "explain":
        return explain_invoice(settings, args.customer, args.period, args.as_of)
    if args.command == "query":
        return query_marts(settings, args.sql, args.format)
    if args.command == "serve":
        from metering_dagster.commands.serve import serve  # uvicorn and Starlette load only for this command

        return serve(settings, args.host, args.port)
    if args.command == "tokens":  # per-customer console tokens (commands/tokens.py)
        from metering_dagster.commands import tokens

        if args.tokens_command == "create":
            return tokens.tokens_create(settings, args.customer)
        if args.tokens_command == "list":
            return tokens.tokens_list(settings)
        return tokens.tokens_revoke(settings, args.id)
    # The bench and the demo load the console and the bench's helpers (~1.5 s): only for these commands, so that
    # `metering run` with nothing new stays within a few seconds.
    if args.command == "bench":
        from metering_dagster.commands.bench.run import run_bench
        from metering_dagster.commands.bench.table import format_table

        report = run_bench(
            args.events,
            keep=args.keep,
            latency_only=args.latency_only,
            crossings=args.crossings,
            poll_interval=args.poll_interval,
            spark=args.spark,
        )
        # the figures against their targets; every step's seconds are in the JSON file the bench names
        print(format_table(report) if "figures" in report else json.dumps(report, indent=2))
        return EXIT_OK
    if args.command == "demo":
        from metering_dagster.commands.demo import DemoRefused, run_demo

        try:
            return run_demo(settings)
        except DemoRefused as refused:  # nothing was deleted: one line, no traceback
            print(f"metering demo: {refused}", file=sys.stderr)
            return EXIT_FAILED
    parser.error(f"unknown command {args.command}")
    return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())

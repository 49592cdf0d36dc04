"""Run the benchmark: a generated month through the real pipeline, then a run with 0.1% new events and a run with
nothing new (each `metering run` in a fresh process), the DuckDB floor and landing alone on the month's files, the
console's pages, the hard-stop latency, and with `spark` the dbt build on Spark; each figure against its target."""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import shutil
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from metering_dagster.billing.retry import STATS
from metering_dagster.commands.bench.floor import duckdb_floor_seconds
from metering_dagster.commands.bench.fresh import timed_metering_run
from metering_dagster.commands.bench.generate import (
    bench_contract_yaml,
    block_budget_limit,
    customers_for,
    generate_month,
    write_new_file,
)
from metering_dagster.commands.bench.memory import PeakMemory, in_fresh_process
from metering_dagster.commands.bench.table import SMALL_RUN_SHARE, figures_of
from metering_dagster.commands.clock import advance_clock
from metering_dagster.commands.runner import execute_metering_job
from metering_dagster.contract import load_contract
from metering_dagster.serving.console.timing import time_pages
from metering_dagster.settings import (
    DEMO_DIR,
    REPO_ROOT,
    Settings,
    export_environment,
    load_settings,
)
from metering_dagster.warehouse import connect

RESULTS = REPO_ROOT / "bench" / "results"
CLOCK_AT = datetime(2026, 11, 1, 0, 30, tzinfo=UTC)
STAGES = {
    "landing": ("metering_contract", "landed_usage_lines"),
    "dbt": ("metering_dbt_models",),
    "checks": ("usage_upload_suite", "shadow_invoice_suite"),
    "upload": ("stripe_billing_objects", "stripe_usage_report"),
    "reconciliation": (
        "stripe_snapshot",
        "period_close",
        "reconciliation_dbt_models",
        "stripe_matches_shadow_invoice",
        "analyst_marts",
        "closed_period_reconciliation",
    ),
}


def stage_seconds(step_seconds: dict[str, float]) -> dict[str, float]:
    out = {stage: 0.0 for stage in STAGES}
    for step, seconds in step_seconds.items():
        for stage, names in STAGES.items():
            if any(name in step for name in names):
                out[stage] += seconds
                break
    return {k: round(v, 2) for k, v in out.items()}


def _touched_since(since: datetime) -> int:
    """Customer × meter × periods the run reported to Stripe (outbox rows it wrote)."""
    con = connect(load_settings().warehouse_path, read_only=True)
    try:
        return con.execute(
            "SELECT count(DISTINCT (customer_id, meter, period_start)) FROM ops.stripe_ledger WHERE created_at >= ?",
            [since],
        ).fetchone()[0]
    finally:
        con.close()


def _timed_run() -> tuple[float, dict]:
    # Here for start-up time: dagster-dbt and the emulator's server are loaded only when the bench runs.
    from metering_dagster.defs.transform.project import prepare_manifest
    from stripe_emulator.server import SERVING

    since = datetime.now(UTC)
    requests_before = STATS.requests  # the job runs in this process (in-process executor)
    emulator_before = SERVING.cpu_seconds  # and so does the embedded emulator
    started = time.perf_counter()
    # A checkout's first run parses the dbt project (the run would do it first thing): timed apart.
    prepare_manifest()
    parse_seconds = time.perf_counter() - started
    outcome = execute_metering_job(tags={"metering/trigger": "bench"})
    wall = time.perf_counter() - started
    if not outcome.success:
        raise SystemExit(f"bench run failed: {outcome.failed_steps or outcome.failed_checks}")
    upload = outcome.materialized.get("stripe_usage_report", {})
    snapshot = outcome.materialized.get("stripe_snapshot", {})
    return wall, {
        "run_id": outcome.run_id,
        "wall_seconds": round(wall, 2),
        "stages": stage_seconds(outcome.step_seconds),
        "steps": {step: round(seconds, 2) for step, seconds in outcome.step_seconds.items()},
        "dbt_parse_seconds": round(parse_seconds, 2),  # in wall_seconds; 0 once the manifest is current
        # the in-process executor runs steps one after another: the rest is Dagster's own start and bookkeeping
        "outside_steps_seconds": round(wall - parse_seconds - sum(outcome.step_seconds.values()), 2),
        "stripe_requests": STATS.requests - requests_before,
        # the emulator's own work answering them, inside the wall time: what Stripe's servers would do
        "emulator_cpu_seconds": round(SERVING.cpu_seconds - emulator_before, 2),
        "stripe_upload_requests": upload.get("requests", upload.get("stripe_requests")),
        "stripe_events_sent": upload.get("events_sent"),
        "customer_meter_periods_touched": _touched_since(since),
        "snapshot_customers_read": snapshot.get("customers_read"),
    }


def _peak_by_step(peak: PeakMemory, run_id: str) -> dict[str, dict]:
    """Each step's peak memory, from its start and end in the Dagster event log."""
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        entries = instance.all_logs(run_id, of_type={dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS})
    started = {e.step_key: e.timestamp for e in entries if e.dagster_event.event_type == dg.DagsterEventType.STEP_START}
    return {
        e.step_key: peak.peak_between(started[e.step_key], e.timestamp)
        for e in entries
        if e.dagster_event.event_type == dg.DagsterEventType.STEP_SUCCESS and e.step_key in started
    }


def _landing(raw_dir: Path, scratch_dir: Path) -> dict:
    """Landing alone on the month's files, in a process of its own (commands/bench/landing.py)."""
    from metering_dagster.commands.bench.landing import time_landing

    timing = in_fresh_process(time_landing, raw_dir, scratch_dir)
    return timing if isinstance(timing, dict) else timing.as_dict()


def _spark(state_dir: Path) -> dict:
    """dbt's build on Spark beside DuckDB's, on the bench's warehouse (commands/bench/spark.py), in a process of its
    own: its JVM and Spark session end with it."""
    if importlib.util.find_spec("metering_dagster.commands.bench.spark") is None:
        return {"not_measured": "commands/bench/spark.py is not there yet"}
    from metering_dagster.commands.bench.spark import time_spark_build

    return in_fresh_process(time_spark_build, state_dir)


def _latency(
    n_events: int, customers: list[str], raw: Path, contract_path: Path, crossings: int, poll_interval: float
) -> dict:
    """The hard-stop latency on the warehouse as the earlier stages left it (see commands/bench/latency.py), with
    a block budget added to the contract: no customer is past it."""
    from metering_dagster.commands.bench.latency import measure_latency  # loads Dagster: only when measured

    limit = block_budget_limit(n_events, customers)
    contract_path.write_text(bench_contract_yaml(DEMO_DIR / "metering.yml", customers, block_limit=limit))
    report = measure_latency(
        raw,
        customers,
        limit + 1,
        # In the current period (Stripe's clock is at CLOCK_AT), where nobody has usage yet: one file blocks.
        CLOCK_AT - timedelta(minutes=30),
        crossings=crossings,
        interval=poll_interval,
    )
    seconds, parts = report["seconds"], report["breakdown_seconds"]
    print(
        f"metering bench: {report['crossings']} crossings of a block budget at {n_events:,} events: file complete ->"
        f" API answers block in p50 {seconds['p50']} s, p95 {seconds['p95']} s, max {seconds['max']} s (waiting for"
        f" a poll every {poll_interval:g} s: p50 {parts['waiting_for_the_poll']['p50']} s; `metering run --budgets`:"
        f" p50 {parts['run_process']['p50']} s)",
        file=sys.stderr,
    )
    return report


def run_bench(
    n_events: int,
    workdir: Path | None = None,
    keep: bool = False,
    results: Path = RESULTS,
    *,
    latency_only: bool = False,
    crossings: int = 10,
    poll_interval: float = 10.0,
    spark: bool = False,
) -> dict:
    """The benchmark's stages, then the hard-stop latency (`crossings` customers blocked; 0: not measured), then
    with `spark` the dbt build on Spark beside DuckDB's. `latency_only`: the month and its run build the warehouse,
    then only the latency is measured."""
    workdir = (workdir or REPO_ROOT / "state" / "bench").resolve()
    shutil.rmtree(workdir, ignore_errors=True)
    raw = workdir / "raw"
    customers = customers_for(n_events)
    contract_path = workdir / "metering.yml"
    workdir.mkdir(parents=True)
    contract_path.write_text(bench_contract_yaml(DEMO_DIR / "metering.yml", customers))
    export_environment(
        Settings(state_dir=workdir / "state", raw_dir=raw, contract_path=contract_path),
        dagster_home=workdir / "state" / "dagster_home",
    )
    (workdir / "state" / "dagster_home").mkdir(parents=True)

    settings = load_settings()
    contract = load_contract(contract_path)

    t = time.perf_counter()
    # The generator and the floor run in processes of their own: their memory is not the pipeline's.
    month = in_fresh_process(generate_month, contract, customers, raw / "month", n_events)
    generate_seconds = time.perf_counter() - t
    advance_clock(settings, CLOCK_AT)

    with PeakMemory() as peak_full:
        _, full = _timed_run()
    full["peak_memory_by_step"] = _peak_by_step(peak_full, full["run_id"])
    if latency_only:
        report = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
            "events": n_events,
            "customers": len(customers),
            "full_run_wall_seconds": full["wall_seconds"],
            "latency": _latency(n_events, customers, raw, contract_path, crossings, poll_interval),
        }
        return _write(report, results / f"bench-latency-{n_events}.json", raw, keep)

    # A run with 0.1% new events: one new file, a few of its events late, a few re-sent. Then a run with nothing
    # new. Both are `metering run` in a process of their own, as a scheduled run is: process start included.
    new = write_new_file(
        contract, customers, raw / "new", max(1, n_events // SMALL_RUN_SHARE), n_events, month.files[0]
    )
    small = timed_metering_run(settings.state_dir)
    idle = timed_metering_run(settings.state_dir)
    floor_seconds, floor_rows = in_fresh_process(duckdb_floor_seconds, raw / "month", contract)
    landing = _landing(raw / "month", workdir / "landing-scratch")
    # The usage console over what these runs published: each page's answer time (the first request apart).
    console_pages = time_pages(settings.state_dir)

    peaks = {"full_run": peak_full.report()}
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "events": n_events,
        "customers": len(customers),
        "meters": len(contract.meters),
        "generated": {
            "files": len(month.files),
            "duplicates": month.duplicates,
            "bad_lines": month.bad_lines,
            "seconds": round(generate_seconds, 2),
        },
        "full_run": full,
        "events_per_second": round(n_events / full["wall_seconds"]),
        "small_run": {
            **small,
            "stages": stage_seconds(small.get("steps", {})),
            "new_events": new.events,
            "new_lines": new.lines,
            "new_late": new.late,
            "new_duplicates": new.duplicates,
        },
        "idle_run": {**idle, "stages": stage_seconds(idle.get("steps", {}))},
        "landing": landing,
        "duckdb_floor_seconds": round(floor_seconds, 2),
        "duckdb_floor_rows": floor_rows,
        "ratio_to_floor": round(full["wall_seconds"] / floor_seconds, 2),
        "peak_memory_mb": max(run["peak_memory_mb"] for run in peaks.values()),
        "peak_memory": peaks,
        "console_pages_seconds": console_pages,
    }
    if crossings:
        report["latency"] = _latency(n_events, customers, raw, contract_path, crossings, poll_interval)
    if spark:  # last: whatever the Spark build leaves in the state folder, no figure above sees it
        report["spark"] = _spark(settings.state_dir)
    report["figures"] = [figure.as_dict() for figure in figures_of(report)]
    return _write(report, results / f"bench-{n_events}.json", raw, keep)


def _write(report: dict, path: Path, raw: Path, keep: bool) -> dict:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"metering bench: every figure and step in {path}", file=sys.stderr)
    if not keep:
        shutil.rmtree(raw, ignore_errors=True)
    return report

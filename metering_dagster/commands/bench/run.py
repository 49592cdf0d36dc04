"""Run the benchmark: a generated month through the real pipeline, then one more day incrementally, then a run
with nothing new (what every run costs)."""

from __future__ import annotations

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
from metering_dagster.commands.bench.generate import (
    bench_contract_yaml,
    block_budget_limit,
    customers_for,
    generate_month,
)
from metering_dagster.commands.bench.memory import PeakMemory, in_fresh_process
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
) -> dict:
    """The benchmark's stages, then the hard-stop latency (`crossings` customers blocked; 0: not measured).
    `latency_only`: the month and its run build the warehouse, then only the latency is measured."""
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

    extra = max(1, n_events * 3 // 100)
    in_fresh_process(generate_month, contract, customers, raw / "day", extra * 9 // 10, 11, n_events, 30, 1)
    in_fresh_process(
        generate_month, contract, customers, raw / "late", extra - extra * 9 // 10, 13, n_events + extra, 21, 9
    )
    with PeakMemory() as peak_incremental:
        _, incremental = _timed_run()
    incremental["peak_memory_by_step"] = _peak_by_step(peak_incremental, incremental["run_id"])
    # Nothing new landed: the fixed cost of a run (a scheduled run in a quiet hour), the least an incremental run
    # can cost. In this warm process, like the incremental run; a fresh process adds Dagster's start.
    _, idle = _timed_run()
    floor_seconds, floor_rows = in_fresh_process(duckdb_floor_seconds, raw / "month", contract)
    # The usage console over what these runs published: each page's answer time (the first request apart).
    console_pages = time_pages(settings.state_dir)

    peaks = {"full_run": peak_full.report(), "incremental_run": peak_incremental.report()}
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
        "incremental_run": {
            **incremental,
            "new_events": extra,
            "share_of_full": round(incremental["wall_seconds"] / full["wall_seconds"], 3),
        },
        "idle_run": {**idle, "share_of_full": round(idle["wall_seconds"] / full["wall_seconds"], 3)},
        "duckdb_floor_seconds": round(floor_seconds, 2),
        "duckdb_floor_rows": floor_rows,
        "ratio_to_floor": round(full["wall_seconds"] / floor_seconds, 2),
        "peak_memory_mb": max(run["peak_memory_mb"] for run in peaks.values()),
        "peak_memory": peaks,
        "console_pages_seconds": console_pages,
    }
    if crossings:
        report["latency"] = _latency(n_events, customers, raw, contract_path, crossings, poll_interval)
    return _write(report, results / f"bench-{n_events}.json", raw, keep)


def _write(report: dict, path: Path, raw: Path, keep: bool) -> dict:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    if not keep:
        shutil.rmtree(raw, ignore_errors=True)
    return report

"""Run the benchmark: a generated month through the real pipeline, then one more day incrementally."""

from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path

from metering_dagster.bench.floor import floor_in_child
from metering_dagster.bench.generate import bench_contract_yaml, customers_for, generate_month
from metering_dagster.settings import DEMO_DIR, REPO_ROOT, load_settings

RESULTS = REPO_ROOT / "bench" / "results"
CLOCK_AT = datetime(2026, 11, 1, 0, 30, tzinfo=timezone.utc)
STAGES = {
    "landing": ("metering_contract", "landed_usage_lines"),
    "dbt": ("metering_dbt_models",),
    "checks": ("usage_upload_suite", "shadow_invoice_suite"),
    "upload": ("stripe_billing_objects", "stripe_usage_report"),
    "reconciliation": ("stripe_snapshot", "period_close", "reconciliation_dbt_models", "stripe_matches_shadow_invoice",
                       "analyst_marts", "closed_period_reconciliation"),
}


def stage_seconds(step_seconds: dict[str, float]) -> dict[str, float]:
    out = {stage: 0.0 for stage in STAGES}
    for step, seconds in step_seconds.items():
        for stage, names in STAGES.items():
            if any(name in step for name in names):
                out[stage] += seconds
                break
    return {k: round(v, 2) for k, v in out.items()}


def reset_peak_memory() -> bool:
    """Forget this process's peak so far (Linux: clear_refs 5 resets VmHWM): the generator's
    arrays are the bench's memory, not the pipeline's."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _own_peak_kib() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # since the process started


def peak_memory_mb() -> dict[str, float]:
    """Peak resident memory of the pipeline's process (since `reset_peak_memory`) and of its largest child
    (dbt); ru_maxrss and VmHWM are in KiB on Linux."""
    own = _own_peak_kib()
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"peak_memory_mb": round(max(own, children) / 1024, 1), "peak_pipeline_process_mb": round(own / 1024, 1),
            "peak_largest_child_mb": round(children / 1024, 1)}


def _touched_since(since: datetime) -> int:
    """Customer × meter × periods the run reported to Stripe (outbox rows it wrote)."""
    from metering_dagster.warehouse import connect

    con = connect(load_settings().warehouse_path, read_only=True)
    try:
        return con.execute(
            "SELECT count(DISTINCT (customer_id, meter, period_start)) FROM ops.stripe_ledger WHERE created_at >= ?",
            [since],
        ).fetchone()[0]
    finally:
        con.close()


def _timed_run() -> tuple[float, dict]:
    from metering_dagster.billing.delivery import STATS
    from metering_dagster.runner import execute_metering_job

    since = datetime.now(timezone.utc)
    requests_before = STATS.requests  # the job runs in this process (in-process executor)
    started = time.perf_counter()
    outcome = execute_metering_job(tags={"metering/trigger": "bench"})
    wall = time.perf_counter() - started
    if not outcome.success:
        raise SystemExit(f"bench run failed: {outcome.failed_steps or outcome.failed_checks}")
    upload = outcome.materialized.get("stripe_usage_report", {})
    snapshot = outcome.materialized.get("stripe_snapshot", {})
    return wall, {
        "wall_seconds": round(wall, 2),
        "stages": stage_seconds(outcome.step_seconds),
        "stripe_requests": STATS.requests - requests_before,
        "stripe_upload_requests": upload.get("requests", upload.get("stripe_requests")),
        "stripe_events_sent": upload.get("events_sent"),
        "customer_meter_periods_touched": _touched_since(since),
        "snapshot_customers_read": snapshot.get("customers_read"),
    }


def run_bench(n_events: int, workdir: Path | None = None, keep: bool = False) -> dict:
    workdir = (workdir or REPO_ROOT / "state" / "bench").resolve()
    shutil.rmtree(workdir, ignore_errors=True)
    raw = workdir / "raw"
    customers = customers_for(n_events)
    contract_path = workdir / "metering.yml"
    workdir.mkdir(parents=True)
    contract_path.write_text(bench_contract_yaml(DEMO_DIR / "metering.yml", customers))
    os.environ.update(
        METERING_STATE_DIR=str(workdir / "state"),
        METERING_RAW_DIR=str(raw),
        METERING_CONTRACT=str(contract_path),
        DAGSTER_HOME=str(workdir / "state" / "dagster_home"),
    )
    (workdir / "state" / "dagster_home").mkdir(parents=True)
    from metering_dagster.cli import advance_clock
    from metering_dagster.contract import load_contract

    settings = load_settings()
    contract = load_contract(contract_path)

    t = time.perf_counter()
    month = generate_month(contract, customers, raw / "month", n_events)
    generate_seconds = time.perf_counter() - t
    advance_clock(settings, CLOCK_AT)

    reset_peak_memory()
    _, full = _timed_run()
    peak_full = peak_memory_mb()

    extra = max(1, n_events * 3 // 100)
    generate_month(contract, customers, raw / "day", extra * 9 // 10, seed=11, first_id=n_events, start_day=30, days=1)
    generate_month(contract, customers, raw / "late", extra - extra * 9 // 10, seed=13, first_id=n_events + extra, start_day=21, days=9)
    reset_peak_memory()
    _, incremental = _timed_run()
    peak_incremental = peak_memory_mb()  # before the floor, which runs in a child on the month's files only
    floor_seconds, floor_rows = floor_in_child(raw / "month", contract_path)

    report = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "events": n_events,
        "customers": len(customers),
        "meters": len(contract.meters),
        "generated": {"files": len(month.files), "duplicates": month.duplicates, "bad_lines": month.bad_lines,
                      "seconds": round(generate_seconds, 2)},
        "full_run": full,
        "events_per_second": round(n_events / full["wall_seconds"]),
        "incremental_run": {**incremental, "new_events": extra,
                            "share_of_full": round(incremental["wall_seconds"] / full["wall_seconds"], 3)},
        "duckdb_floor_seconds": round(floor_seconds, 2),
        "duckdb_floor_rows": floor_rows,
        "ratio_to_floor": round(full["wall_seconds"] / floor_seconds, 2),
        # both runs; the largest child (dbt) is over the whole bench
        "peak_memory_mb": max(peak_full["peak_memory_mb"], peak_incremental["peak_memory_mb"]),
        "peak_memory": {"full_run": peak_full, "incremental_run": peak_incremental},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"bench-{n_events}.json").write_text(json.dumps(report, indent=2) + "\n")
    if not keep:
        shutil.rmtree(raw, ignore_errors=True)
    return report

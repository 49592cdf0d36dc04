"""`metering run` in a process of its own, timed end to end: what a scheduled run costs, Python's and Dagster's start
included. Where its time went comes from the Dagster instance's event log (the run's steps), whether it invoked dbt
from dbt's target folders (each invocation writes its results there)."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

from metering_dagster.commands.bench.latency import METERING
from metering_dagster.commands.common import EXIT_FAILED
from metering_dagster.settings import subprocess_environment

# Metadata of the run's steps worth keeping in the bench's report: asset -> its metadata keys.
KEPT_METADATA = {
    "landed_usage_lines": ("files_landed", "lines_read", "lines_landed", "lines_quarantined_at_landing", "lines_blank"),
    "stripe_usage_report": ("events_sent", "requests", "stripe_requests"),
    "stripe_snapshot": ("customers_read",),
}


def _dbt_writes(state_dir: Path) -> dict[str, float]:
    """dbt's target folder of each dbt step (defs/transform/assets.py) -> the newest modification in it."""
    out = {}
    for folder in (state_dir / "dbt_target").glob("*"):
        times = [p.stat().st_mtime for p in folder.rglob("*") if p.is_file()]
        out[folder.name] = max(times, default=0.0)
    return out


def _run_record(instance, short_id: str):
    for record in instance.get_run_records(limit=20):
        if record.dagster_run.run_id.startswith(short_id):
            return record
    return None


def _inside_the_run(short_id: str, started_epoch: float, ended_epoch: float) -> dict:
    """The run's steps (seconds), the process's time before and after the run, and the kept metadata."""
    import dagster as dg  # here for start-up time: only when a run was made

    with dg.DagsterInstance.get() as instance:
        record = _run_record(instance, short_id)
        if record is None:
            return {}
        run_id = record.dagster_run.run_id
        steps = {
            stat.step_key: round(stat.end_time - stat.start_time, 2)
            for stat in instance.get_run_step_stats(run_id)
            if stat.start_time is not None and stat.end_time is not None
        }
        metadata: dict[str, dict] = {}
        for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
            materialization = entry.asset_materialization
            asset = materialization.asset_key.path[-1]
            for key in KEPT_METADATA.get(asset, ()):
                if key in materialization.metadata:
                    metadata.setdefault(asset, {})[key] = materialization.metadata[key].value
    return {
        "run_id": run_id,
        "steps": steps,
        # Python, Dagster, the code location and dbt's manifest, before the run's first event
        "before_the_run_seconds": round(record.start_time - started_epoch, 2) if record.start_time else None,
        # the summary's figures and the process's exit
        "after_the_run_seconds": round(ended_epoch - record.end_time, 2) if record.end_time else None,
        "metadata": metadata,
    }


def timed_metering_run(state_dir: Path) -> dict:
    """`metering run` as a new process on the environment's state folder (and its emulator): wall seconds from
    before the process starts to its exit, its exit code, the dbt steps that invoked dbt, and inside the run (when
    it made one) each step's seconds and what it landed and sent."""
    before = _dbt_writes(state_dir)
    started_epoch, started = time.time(), time.perf_counter()
    process = subprocess.run([*METERING, "run"], env=subprocess_environment(), capture_output=True, text=True)
    wall = time.perf_counter() - started
    ended_epoch = time.time()
    if process.returncode == EXIT_FAILED:
        raise SystemExit(f"bench: `metering run` failed:\n{process.stdout}\n{process.stderr[-4000:]}")
    after = _dbt_writes(state_dir)
    found = re.search(r"metering run ([0-9a-f]{8})", process.stdout)
    report = {
        "wall_seconds": round(wall, 2),
        "exit_code": process.returncode,
        "dbt_invocations": sorted(name for name, newest in after.items() if newest > before.get(name, 0.0)),
        "summary_first_line": process.stdout.splitlines()[0] if process.stdout else "",
    }
    if found:
        report |= _inside_the_run(found.group(1), started_epoch, ended_epoch)
    return report

"""A sensor that starts the metering job when new log files appear.

It looks at file names, sizes and modification times only (kept in its cursor), not at
the warehouse: DuckDB may be locked by a running job. Landing itself decides, by content
hash, what is really new.
"""

import hashlib
import json
from pathlib import Path

import dagster as dg

from metering_dagster.defs.orchestration.automation import default_sensor_status
from metering_dagster.defs.orchestration.jobs import metering_job
from metering_dagster.settings import load_settings

LOG_PATTERNS = ("*.jsonl", "*.jsonl.gz")


def list_log_files(raw_dir: Path) -> dict[str, list[int]]:
    """Every log file under raw_dir (relative path -> [size, mtime_ns]), in path order."""
    found: dict[str, list[int]] = {}
    if not raw_dir.is_dir():
        return found
    for pattern in LOG_PATTERNS:
        for path in raw_dir.rglob(pattern):
            if path.is_file():
                stat = path.stat()
                found[path.relative_to(raw_dir).as_posix()] = [stat.st_size, stat.st_mtime_ns]
    return dict(sorted(found.items()))


def new_or_changed(current: dict[str, list[int]], seen: dict[str, list[int]]) -> list[str]:
    return [name for name, sig in current.items() if seen.get(name) != sig]


@dg.sensor(
    job=metering_job,
    minimum_interval_seconds=60,
    default_status=default_sensor_status(),
    description="Starts the metering job when new or changed *.jsonl(.gz) files appear under METERING_RAW_DIR.",
)
def new_usage_logs_sensor(context: dg.SensorEvaluationContext):
    raw_dir = load_settings().raw_dir
    current = list_log_files(raw_dir)
    seen = json.loads(context.cursor) if context.cursor else {}
    changed = new_or_changed(current, seen)
    if not changed:
        return dg.SkipReason(f"no new log files under {raw_dir}")
    run_key = hashlib.sha256(json.dumps({n: current[n] for n in changed}).encode()).hexdigest()[:16]
    context.update_cursor(json.dumps(current))
    return dg.RunRequest(run_key=run_key, tags={"metering/new_files": str(len(changed))})

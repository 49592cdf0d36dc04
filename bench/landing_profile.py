"""Time landing alone: `land_new_files` on a fresh DuckDB over generated bench files.

    .venv/bin/python bench/landing_profile.py [n_events] [workdir]

Generates the files once (kept under workdir/raw-<n>), then lands them into a new
DuckDB file and prints seconds, rows and peak RSS (ru_maxrss of this process).
"""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

from metering_dagster.commands.bench.generate import bench_contract_yaml, customers_for, generate_month
from metering_dagster.contract import load_contract
from metering_dagster.landing import land_new_files
from metering_dagster.settings import DEMO_DIR
from metering_dagster.warehouse import connect


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(n_events: int, workdir: Path) -> None:
    raw = workdir / f"raw-{n_events}"
    if not raw.is_dir():
        customers = customers_for(n_events)
        contract_path = workdir / f"metering-{n_events}.yml"
        workdir.mkdir(parents=True, exist_ok=True)
        contract_path.write_text(bench_contract_yaml(DEMO_DIR / "metering.yml", customers))
        generate_month(load_contract(contract_path), customers, raw / "month", n_events)
    db = workdir / f"landing-{n_events}.duckdb"
    db.unlink(missing_ok=True)
    con = connect(db)
    started, cpu_started = time.perf_counter(), _cpu_seconds()
    result = land_new_files(con, raw)
    seconds, cpu = time.perf_counter() - started, _cpu_seconds() - cpu_started
    rows = con.execute("select count(*) from raw.usage_lines").fetchone()[0]
    con.close()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"landing {n_events}: {seconds:.2f} s ({cpu:.2f} s CPU), {len(result.landed)} files, {result.lines_read} read, "
        f"{rows} rows, {result.lines_quarantined} quarantined, peak RSS {rss:.0f} MB"
    )


if __name__ == "__main__":
    main(
        int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000,
        Path(sys.argv[2]) if len(sys.argv) > 2 else Path("/tmp/landing-helper"),
    )

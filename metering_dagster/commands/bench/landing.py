"""Landing alone, timed: the given raw files landed into a scratch warehouse of their own."""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from metering_dagster.landing import land_new_files
from metering_dagster.warehouse import connect


@dataclass(frozen=True)
class LandingTiming:
    files: int
    lines: int  # every line read, blank lines included
    seconds: float
    lines_per_second: int

    def as_dict(self) -> dict:
        return asdict(self)


def time_landing(raw_dir: Path, scratch_dir: Path) -> LandingTiming:
    """Land every raw file under `raw_dir` into a new warehouse in `scratch_dir` (emptied first, removed after),
    timing `land_new_files` alone: the warehouse's creation is not in the figure, its commit is."""
    scratch_dir = Path(scratch_dir)
    shutil.rmtree(scratch_dir, ignore_errors=True)
    scratch_dir.mkdir(parents=True)
    con = connect(scratch_dir / "landing.duckdb")
    try:
        started = time.perf_counter()
        result = land_new_files(con, raw_dir)
        seconds = time.perf_counter() - started
    finally:
        con.close()
        shutil.rmtree(scratch_dir, ignore_errors=True)
    if result.failed or result.incomplete:
        raise RuntimeError(f"landing bench: files not landed: {result.failed or result.incomplete}")
    return LandingTiming(
        files=len(result.landed),
        lines=result.lines_read,
        seconds=round(seconds, 2),
        lines_per_second=round(result.lines_read / seconds) if seconds else 0,
    )

"""A scratch copy of the warehouse, rebuilt by dbt: what the marts would say, without touching Stripe.

`metering corrections preview` lands what has arrived into the copy; `metering explain --as-of` drops
from it every line landed after a time and rebuilds from scratch. The copy is made from the reader copy
(reader_copy.py), never from the warehouse: a run in progress neither waits for these commands nor holds them up.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from metering_dagster.serving.reader_copy import require_reader_copy
from metering_dagster.settings import Settings, subprocess_environment

DBT_SELECTION = ["--exclude", "tag:reconciliation"]


@contextlib.contextmanager
def scratch_copy(settings: Settings) -> Iterator[Path]:
    """A temporary state folder holding a copy of the reader copy as its warehouse; removed afterwards."""
    source = require_reader_copy(settings)
    folder = Path(tempfile.mkdtemp(prefix="metering-scratch-"))
    try:
        shutil.copy2(source, folder / "warehouse.duckdb")
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def dbt_run(state_dir: Path, *, full_refresh: bool) -> None:
    """`dbt run` of every model but the reconciliation ones, against the warehouse in `state_dir`.

    In a child process: dbt-duckdb keeps its connection open in the process that ran it.
    """
    # Here for start-up time: the dbt project module loads dagster-dbt, which only a rebuild needs.
    from metering_dagster.defs.transform.project import DBT_PROJECT_DIR, dbt_executable

    args = [
        dbt_executable(),
        "run",
        *DBT_SELECTION,
        "--project-dir",
        str(DBT_PROJECT_DIR),
        "--profiles-dir",
        str(DBT_PROJECT_DIR),
        "--target-path",
        str(state_dir / "target"),
        "--log-path",
        str(state_dir / "logs"),
    ]
    if full_refresh:
        args.append("--full-refresh")
    done = subprocess.run(
        args, check=False, env=subprocess_environment(METERING_STATE_DIR=str(state_dir)), capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"dbt run failed in the scratch copy:\n{done.stdout[-3000:]}{done.stderr[-2000:]}")

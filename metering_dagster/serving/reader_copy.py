"""The reader copy: the whole warehouse as the last completed run left it, for the commands that only read.

DuckDB locks its file against every other process, readers included: a reader holding `warehouse.duckdb`
would stop the next run, and a run would keep every reader waiting. So each run ends by publishing a copy of
the whole warehouse, `reader.duckdb` beside it: a CHECKPOINT on the run's connection (the file alone then holds
everything), the file copied to a temporary name, renamed over the previous copy. `metering explain` and
`metering corrections preview` read this copy and never open the warehouse; a reader that has the old copy
open keeps reading it, a new one gets the new copy.

It is a separate file from the analysts' copy (`analytics.duckdb`, the marts only, written in a storage
version older DuckDB tools open, see publish.py): these commands need the raw lines and the ledger too, and a
file copy of the whole warehouse costs a fraction of rewriting it table by table.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import duckdb

from metering_dagster.settings import Settings, duckdb_config

READER_FILE = "reader.duckdb"


class ReaderCopyMissing(FileNotFoundError):
    """No run has published the reader copy yet."""


def reader_path(settings: Settings) -> Path:
    return settings.state_dir / READER_FILE


def publish_reader_copy(con: duckdb.DuckDBPyConnection, settings: Settings) -> Path:
    """Copy the warehouse that `con` writes to the reader copy, atomically replacing it (module doc).

    Called by the run with no other writer on the warehouse: after the CHECKPOINT the file is complete and
    nothing changes it while it is copied.
    """
    target = reader_path(settings)
    tmp = target.with_name(target.name + ".tmp")
    con.execute("CHECKPOINT")
    shutil.copyfile(settings.warehouse_path, tmp)
    os.replace(tmp, target)
    return target


def require_reader_copy(settings: Settings) -> Path:
    """The reader copy's path; `ReaderCopyMissing` (one line, saying what to do) when no run published it."""
    path = reader_path(settings)
    if not path.exists():
        raise ReaderCopyMissing(f"no reader copy at {path} yet: `metering run` publishes it when a run completes")
    return path


def open_reader(settings: Settings) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the reader copy; it never waits for a run, and no run waits for it."""
    path = require_reader_copy(settings)
    return duckdb.connect(str(path), read_only=True, config=duckdb_config())

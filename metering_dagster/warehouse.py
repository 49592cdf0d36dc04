"""The DuckDB warehouse: one connection helper, and rows written in bulk.

A read-write connection creates the source tables (schema.py, the interface of docs/ARCHITECTURE.md, "Written
by Python"), empty, so that dbt can build before anything has been landed, before the contract was written, and
before any Stripe snapshot. Writers fill them (landing, contract, billing); dbt only reads them.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

import duckdb
import polars as pl

from metering_dagster.schema import ensure_source_tables
from metering_dagster.settings import duckdb_config, warehouse_wait_seconds

# Connections get `settings.duckdb_config()`, for the 2-core machine the product targets: both cores, and a
# memory ceiling that keeps a whole run under 2 GB whatever the volume: DuckDB spills past it to its default place,
# `warehouse.duckdb.tmp/` in the state folder (not set explicitly: dbt-duckdb sets settings on every
# cursor, and DuckDB refuses to move a temp directory in use). dbt's profile reads the same
# variables. TIMESTAMPTZ values are UTC.


class WarehouseHeld(Exception):
    """Another process has the warehouse open, so this one cannot: one line naming it and what to do."""


_LOCK_HOLDER = re.compile(r"\(PID ([0-9]+)\)")


def _command_line(pid: int, limit: int = 200) -> str | None:
    """The process's command line as a shell shows it, cut to `limit` characters; None when unreadable."""
    try:
        argv = [a.decode(errors="replace") for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if a]
    except OSError:
        return None
    text = " ".join(" ".join(a.split()) for a in argv)  # one line, even for `python -c` with a script
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _holder(error: duckdb.Error) -> str:
    """The process that holds the file, as DuckDB's lock error names it, with its command line."""
    match = _LOCK_HOLDER.search(str(error))
    if not match:
        return "another process"
    pid = int(match.group(1))
    command = _command_line(pid)
    return f"process {pid}" + (f" (`{command}`)" if command else "")


def held_message(path: Path, error: duckdb.Error, waited: float) -> str:
    """Who holds the warehouse and what to do, in one line."""
    waited_text = f" for {waited:g} s" if waited else ""
    return (
        f"the warehouse {path} is held{waited_text} by {_holder(error)}; DuckDB lets no other process open it meanwhile. "
        "Close that session (read analytics.duckdb or use `metering query` instead: they never hold the "
        "warehouse), or set METERING_WAREHOUSE_WAIT_SECONDS to wait for it"
    )


def connect(path: str | Path, read_only: bool = False, wait_seconds: float | None = None) -> duckdb.DuckDBPyConnection:
    """Open the warehouse; read-write also creates the folder, schemas and empty source tables.

    DuckDB locks the file against every other process, readers included. A run that finds it held
    stops at once with `WarehouseHeld` (who holds it, what to do), or first waits up to
    `METERING_WAREHOUSE_WAIT_SECONDS` (default 0) for the holder to let go.
    """
    path = Path(path)
    config = duckdb_config()
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    if wait_seconds is None:
        wait_seconds = warehouse_wait_seconds()
    deadline = time.monotonic() + wait_seconds
    told = False
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only, config=config)
            break
        except duckdb.IOException as error:
            if "lock" not in str(error).lower():
                raise
            if time.monotonic() >= deadline:
                raise WarehouseHeld(held_message(path, error, wait_seconds)) from None
            if not told:  # never wait in silence: on the terminal of `metering run`, in the step's stderr in the UI
                print(
                    f"metering: waiting up to {wait_seconds:g} s for {_holder(error)} to let go of the warehouse "
                    f"{path}",
                    file=sys.stderr,
                    flush=True,
                )
                told = True
            time.sleep(0.25)
    if not read_only:
        ensure_source_tables(con)
    return con


class ArrowStream:
    """A polars frame as an Arrow C stream, which DuckDB scans directly (no pyarrow, no file in between)."""

    def __init__(self, frame: pl.DataFrame):
        self._frame = frame

    def __arrow_c_stream__(self, requested_schema=None):
        return self._frame.__arrow_c_stream__(requested_schema)


def _rows_frame(rows: Sequence[Sequence]) -> tuple[pl.DataFrame, list[str]]:
    """The rows as columns c0, c1, ..., and each column's name in SQL (`NULL` where it holds nothing:
    Arrow's null type does not reach DuckDB). A column holding a Decimal goes as text, cast exactly by the SQL."""
    columns, names = {}, []
    for i, values in enumerate(zip(*rows)):
        if all(v is None for v in values):
            names.append("NULL")
            continue
        if any(isinstance(v, Decimal) for v in values):
            values = [None if v is None else str(v) for v in values]
        columns[f"c{i}"] = pl.Series(values, strict=False)
        names.append(f"c{i}")
    return pl.DataFrame(columns), names


def insert_rows(
    con: duckdb.DuckDBPyConnection, head: str, row_sql: str, rows: Sequence[Sequence], tail: str = ""
) -> None:
    """`{head} SELECT {row_sql} FROM the rows {tail}`: `row_sql` is one row's VALUES tuple, e.g.
    `(?, to_timestamp(?))`, each `?` standing for the row's next column.

    DuckDB's `executemany` runs one statement per row (about 5 ms each), and a long VALUES list
    costs its parsing (about 1 ms a row: 24,000 invoice lines took 11 s). The rows go as one
    polars frame that DuckDB scans in place.
    """
    if not rows:
        return
    frame, names = _rows_frame(rows)
    columns = iter(names)
    select = re.sub(r"\?", lambda _: next(columns), row_sql.strip()[1:-1])
    inserted_rows = ArrowStream(frame)  # noqa: F841  (found by DuckDB's replacement scan)
    con.execute(f"{head} SELECT {select} FROM inserted_rows {tail}")


def utc_date(timestamptz_sql: str) -> str:
    """SQL for the UTC calendar day of a TIMESTAMPTZ expression. A cast to DATE goes through the session's time
    zone, which DuckDB takes from the machine (dbt_project/DECISIONLOG.md): through the epoch it is UTC's anywhere."""
    return f"make_timestamp(epoch_us({timestamptz_sql}))::DATE"

"""Publish the marts to a separate DuckDB file that analysts open read-only.

DuckDB locks the warehouse against every other process while a run writes it, so analysts read
a copy, replaced atomically (write a temporary file, then rename): readers that have the old file
open keep reading it; new readers get the new one.

The copy follows what changed: the previous published file is copied as a file and, for a table
that grows by landing run (`landing_run_id`, e.g. `fct_metered_events`, one row per event), only
rows of newer runs are appended when the older rows are still the same count; small tables and
anything else are copied whole. A rebuild (`--full-refresh` after a contract change) gets a full copy: the
published file records the build it copies (`metering_publish.built_from`).

It is written in an older storage version (`ANALYST_STORAGE_VERSION`) than the pinned DuckDB's own, so that the
DuckDB CLI and other DuckDB-based tools analysts have open it: the newest CLI on PyPI (`duckdb-cli` 1.5.6) cannot
read the storage of DuckDB 2. A copy published in a newer storage version is written anew.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import duckdb


def _tables(con: duckdb.DuckDBPyConnection, sql: str, schema: str) -> list[str]:
    return [r[0] for r in con.execute(sql + " order by table_name", [schema]).fetchall()]


def _append_only(con: duckdb.DuckDBPyConnection, source: str, published: str) -> int | None:
    """The last landing run already published, when `published` is `source` up to that run; else None."""
    columns = "select column_name, column_type from (describe {})"
    if con.execute(columns.format(source)).fetchall() != con.execute(columns.format(published)).fetchall():
        return None  # the model's columns changed
    last, count = con.execute(f"select max(landing_run_id), count(*) from {published}").fetchone()
    if last is None:
        return None
    same = con.execute(f"select count(*) from {source} where landing_run_id <= ?", [last]).fetchone()[0]
    return last if same == count else None


# The storage the newest DuckDB CLI installable from PyPI (`duckdb-cli` 1.5.6) reads; DuckDB 2 writes it on request.
ANALYST_STORAGE_VERSION = "v1.5.0"

# Where the published file records the build it copies: a rebuild (--full-refresh) gets a full copy.
STATE_TABLE = "published.metering_publish.built_from"


def _published_generation(con: duckdb.DuckDBPyConnection) -> str | None:
    try:
        row = con.execute(f"select generation from {STATE_TABLE}").fetchone()
    except duckdb.Error:
        return None
    return row[0] if row else None


def _attach_published(con: duckdb.DuckDBPyConnection, tmp: Path) -> None:
    """Attach `tmp` as `published` in the analysts' storage version; a previous copy in a newer one is dropped."""
    attach = f"attach ? as published (storage_version '{ANALYST_STORAGE_VERSION}')"
    try:
        con.execute(attach, [str(tmp)])
    except duckdb.InvalidInputException as error:
        if "storage version" not in str(error):
            raise
        tmp.unlink()  # published before in DuckDB 2's storage, which cannot be lowered: start anew
        con.execute(attach, [str(tmp)])


def publish_marts(
    con: duckdb.DuckDBPyConnection, target: Path, schema: str = "marts", generation: str | None = None
) -> list[str]:
    """Copy every table and view of `schema` into `target`, atomically replacing it (module doc).

    `generation` names the build the models come from (the contract fingerprint they were last rebuilt for):
    when it differs from the published one, every table is copied whole, as rows may have changed in place.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.unlink(missing_ok=True)
    if target.exists():
        shutil.copyfile(target, tmp)
    names = _tables(con, "select table_name from information_schema.tables where table_schema = ?", schema)
    growing = set(
        _tables(
            con,
            "select table_name from information_schema.columns where table_schema = ? and column_name = 'landing_run_id'",
            schema,
        )
    )
    _attach_published(con, tmp)
    try:
        con.execute(f'create schema if not exists published."{schema}"')
        have = set(
            _tables(
                con,
                "select table_name from information_schema.tables where table_catalog = 'published' and table_schema = ?",
                schema,
            )
        )
        same_build = generation is not None and _published_generation(con) == generation
        for name in names:
            source, published = f'"{schema}"."{name}"', f'published."{schema}"."{name}"'
            last = _append_only(con, source, published) if same_build and name in growing and name in have else None
            if last is not None:
                con.execute(f"insert into {published} select * from {source} where landing_run_id > ?", [last])
            else:
                con.execute(f"create or replace table {published} as select * from {source}")
        for name in have - set(names):
            con.execute(f'drop table published."{schema}"."{name}"')
        con.execute("create schema if not exists published.metering_publish")
        con.execute(f"create or replace table {STATE_TABLE} as select ?::varchar as generation", [generation])
    finally:
        con.execute("detach published")
    os.replace(tmp, target)
    return names

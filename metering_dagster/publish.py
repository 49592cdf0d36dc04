"""Publish the marts to a separate DuckDB file that analysts open read-only."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb


def publish_marts(con: duckdb.DuckDBPyConnection, target: Path, schema: str = "marts") -> list[str]:
    """Copy every table and view of `schema` into `target`, atomically replacing it.

    Readers that have the old file open keep reading it; new readers get the new one.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.unlink(missing_ok=True)
    names = [
        r[0]
        for r in con.execute(
            "select table_name from information_schema.tables where table_schema = ? order by table_name",
            [schema],
        ).fetchall()
    ]
    con.execute("attach ? as published", [str(tmp)])
    try:
        con.execute(f'create schema published."{schema}"')
        for name in names:
            con.execute(f'create table published."{schema}"."{name}" as select * from "{schema}"."{name}"')
    finally:
        con.execute("detach published")
    os.replace(tmp, target)
    return names

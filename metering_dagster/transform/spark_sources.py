"""The dbt sources as Parquet files, for the `spark` dbt target (dbt_project/macros/engine_sources.sql).

DuckDB holds what the pipeline's Python steps write (landed lines, the contract, Stripe's view, the ops records) in
the warehouse file. Spark reads each source table from `<location>/<schema>/<table>/` instead, a local folder or an
object-store URL (written through DuckDB, whose httpfs extension writes s3:// and gs:// URLs):

- the landed lines (raw.usage_lines), one file per landing run, written once and never rewritten: a run's export
  writes the landing runs that have no file yet, so Spark reads new files beside the old ones;
- every other source table (the contract, the landing manifest, Stripe's view, the ops records: small), whole,
  replacing its previous file before each dbt step.

Types carry over: exact decimals and text stay what they are (numbers in the landed JSON are text, see
landing/parse.py), a TIMESTAMPTZ is an instant in UTC.
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb

# The schemas of the dbt sources (dbt_project/models/staging/_sources.yml).
SOURCE_SCHEMAS = ("raw", "contract", "ops", "stripe_view")
LANDED_LINES = ("raw", "usage_lines")
LANDING_RUN_FILE = re.compile(r"landing_run_([0-9]+)\.parquet$")


def _is_url(location: str) -> bool:
    return "://" in location and not location.startswith("file://")


def _write(con: duckdb.DuckDBPyConnection, query: str, parameters: list, target: str) -> None:
    """`query`'s rows as one Parquet file at `target`. In a folder, written beside and renamed when complete: a
    reader never sees half a file (an object store makes an object visible only when its upload completes)."""
    if _is_url(target):
        con.execute(f"copy ({query}) to '{_quoted(target)}' (format parquet)", parameters)
        return
    path = Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.writing")
    con.execute(f"copy ({query}) to '{_quoted(str(partial))}' (format parquet)", parameters)
    partial.replace(path)


def _quoted(text: str) -> str:
    return text.replace("'", "''")


def landed_runs_written(con: duckdb.DuckDBPyConnection, location: str) -> set[int]:
    """The landing runs whose lines already have their file under `location`."""
    folder = f"{location}/{'/'.join(LANDED_LINES)}"
    if not _is_url(location):
        names = [p.name for p in Path(folder).glob("landing_run_*.parquet")]
    else:
        names = [
            row[0]
            for row in con.execute(f"select file from glob('{_quoted(folder)}/landing_run_*.parquet')").fetchall()
        ]
    return {int(m.group(1)) for m in map(LANDING_RUN_FILE.search, names) if m}


def export_landed_lines(con: duckdb.DuckDBPyConnection, location: str | Path) -> list[int]:
    """Each landing run's lines that have no file yet to `<location>/raw/usage_lines/landing_run_<id>.parquet`;
    returns those runs. A landed line is never changed or deleted, so a written file stays true."""
    location = str(location)
    written = landed_runs_written(con, location)
    runs = [r for (r,) in con.execute("select distinct landing_run_id from raw.usage_lines order by 1").fetchall()]
    new = [run for run in runs if run not in written]
    folder = f"{location}/{'/'.join(LANDED_LINES)}"
    if not runs and not _is_url(location) and not any(Path(folder).glob("*.parquet")):
        # no line landed yet: a file without rows gives Spark the table's columns (a folder without files has none)
        _write(con, "select * from raw.usage_lines limit 0", [], f"{folder}/no_lines.parquet")
    for run in new:
        _write(
            con,
            "select * from raw.usage_lines where landing_run_id = ? order by source_file, line_number",
            [run],
            f"{folder}/landing_run_{run}.parquet",
        )
    return new


def export_small_sources(con: duckdb.DuckDBPyConnection, location: str | Path) -> list[str]:
    """Every source table but the landed lines, whole, to `<location>/<schema>/<table>/part-0.parquet`; returns
    the `schema.table`s written."""
    location = str(location)
    tables = con.execute(
        "select table_schema, table_name from information_schema.tables "
        "where table_type = 'BASE TABLE' and table_schema in (select unnest(?)) order by 1, 2",
        [list(SOURCE_SCHEMAS)],
    ).fetchall()
    written = []
    for schema, table in tables:
        if (schema, table) == LANDED_LINES:
            continue
        _write(con, f'select * from "{schema}"."{table}"', [], f"{location}/{schema}/{table}/part-0.parquet")
        written.append(f"{schema}.{table}")
    return written


def export_sources_to_parquet(con: duckdb.DuckDBPyConnection, location: str | Path) -> list[str]:
    """What Spark reads before a dbt step: new landing runs' lines, then every other source table whole; returns
    the `schema.table`s written."""
    landed = export_landed_lines(con, location)
    return (["raw.usage_lines"] if landed else []) + export_small_sources(con, location)

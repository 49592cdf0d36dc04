"""The dbt sources as Parquet files, for the `spark` dbt target (dbt_project/macros/engine_sources.sql).

DuckDB holds what the pipeline's Python steps write (landed lines, the contract, Stripe's view, the ops records) in
the warehouse file. Spark reads each source table from `<folder>/<schema>/<table>/` instead: this writes one Parquet
file per table there, every row of it, replacing the previous file. Types carry over: exact decimals and text stay
what they are (numbers in the landed JSON are text, see landing/parse.py), a TIMESTAMPTZ is an instant in UTC.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

# The schemas of the dbt sources (dbt_project/models/staging/_sources.yml).
SOURCE_SCHEMAS = ("raw", "contract", "ops", "stripe_view")


def export_sources_to_parquet(con: duckdb.DuckDBPyConnection, folder: Path) -> list[str]:
    """Every table of the source schemas to `<folder>/<schema>/<table>/part-0.parquet`; returns `schema.table`s."""
    tables = con.execute(
        "select table_schema, table_name from information_schema.tables "
        "where table_type = 'BASE TABLE' and table_schema in (select unnest(?)) order by 1, 2",
        [list(SOURCE_SCHEMAS)],
    ).fetchall()
    written = []
    for schema, table in tables:
        target = Path(folder) / schema / table
        target.mkdir(parents=True, exist_ok=True)
        partial = target / ".part-0.parquet.writing"  # a reader never sees half a file: renamed when complete
        con.execute(f'copy (select * from "{schema}"."{table}") to ? (format parquet)', [str(partial)])
        partial.replace(target / "part-0.parquet")
        written.append(f"{schema}.{table}")
    return written

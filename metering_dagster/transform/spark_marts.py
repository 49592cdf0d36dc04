"""The tables a dbt step built on Spark, copied into the warehouse file where every later step reads them.

On the `spark` target dbt writes each model as a Parquet table under Spark's warehouse folder
(`<state>/spark/warehouse/<schema>.db/<table>/`, profiles.yml). After each Spark dbt step the models it built
(tables and incremental models: a view has no files) replace their namesakes in the DuckDB warehouse, so the
quality suites, the Stripe upload, the snapshot, period close, reconciliation and the readers' copies read what
Spark built without knowing which engine built it (DECISIONLOG.md "Spark builds, the warehouse file serves").
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

COPIED_MATERIALIZATIONS = ("table", "incremental")


def spark_warehouse_dir(state_dir: Path) -> Path:
    """Spark's warehouse folder, as profiles.yml sets it (spark.sql.warehouse.dir)."""
    return state_dir / "spark" / "warehouse"


def models_built(target_path: Path) -> list[tuple[str, str]]:
    """The (schema, table) of every table or incremental model the dbt invocation whose artifacts are in
    `target_path` built successfully, in the order dbt built them."""
    results = json.loads((target_path / "run_results.json").read_text())["results"]
    nodes = json.loads((target_path / "manifest.json").read_text())["nodes"]
    built = []
    for result in results:
        node = nodes.get(result["unique_id"], {})
        if (
            node.get("resource_type") == "model"
            and result["status"] == "success"
            and node["config"]["materialized"] in COPIED_MATERIALIZATIONS
        ):
            built.append((node["schema"], node["alias"]))
    return built


def copy_spark_tables(con: duckdb.DuckDBPyConnection, warehouse_dir: Path, tables: list[tuple[str, str]]) -> None:
    """Each Spark table's Parquet files into the DuckDB table of the same schema and name, replacing it; all or
    nothing (one transaction)."""
    con.execute("begin")
    try:
        for schema, table in tables:
            folder = warehouse_dir / f"{schema}.db" / table
            if not any(folder.rglob("*.parquet")):
                raise FileNotFoundError(f"Spark's table {schema}.{table} has no Parquet file under {folder}")
            partitioned = any(p.is_dir() and "=" in p.name for p in folder.iterdir())
            con.execute(f'create schema if not exists "{schema}"')
            con.execute(
                f'create or replace table "{schema}"."{table}" as select * from read_parquet(?, hive_partitioning = ?)',
                [str(folder / ("**/*.parquet" if partitioned else "*.parquet")), partitioned],
            )
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise

"""The tables a dbt step built on Spark, copied into the warehouse file where every later step reads them.

On the `spark` target dbt writes each model as a Parquet table under Spark's warehouse folder
(`<state>/spark/warehouse/<schema>.db/<table>/`, profiles.yml). After each Spark dbt step the models it built
replace their namesakes in the DuckDB warehouse: a table (or incremental model) as its rows, read from its Parquet
files; a view of the marts (a select over other models, in SQL both engines read) as the same view over the copied
tables. Staging views are not copied: they read the sources in Spark's SQL, and no step after dbt reads them. So the
quality suites, the Stripe upload, the snapshot, period close, reconciliation and the readers' copies read what
Spark built without knowing which engine built it (DECISIONLOG.md "Spark builds, the warehouse file serves").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import duckdb

COPIED_MATERIALIZATIONS = ("table", "incremental")
VIEWS_COPIED_FROM = ("marts",)


def spark_warehouse_dir(state_dir: Path) -> Path:
    """Spark's warehouse folder, as profiles.yml sets it (spark.sql.warehouse.dir)."""
    return state_dir / "spark" / "warehouse"


@dataclass(frozen=True)
class BuiltModel:
    schema: str
    name: str
    view_sql: str | None = None  # a view's select (Spark's compiled SQL); None for a table


def models_built(target_path: Path) -> list[BuiltModel]:
    """The tables (and views of the marts) that the dbt invocation whose artifacts are in `target_path` built
    successfully, in the order dbt built them."""
    results = json.loads((target_path / "run_results.json").read_text())["results"]
    nodes = json.loads((target_path / "manifest.json").read_text())["nodes"]
    built = []
    for result in results:
        node = nodes.get(result["unique_id"], {})
        if node.get("resource_type") != "model" or result["status"] != "success":
            continue
        materialized = node["config"]["materialized"]
        if materialized in COPIED_MATERIALIZATIONS:
            built.append(BuiltModel(node["schema"], node["alias"]))
        elif materialized == "view" and node["schema"] in VIEWS_COPIED_FROM:
            built.append(BuiltModel(node["schema"], node["alias"], result["compiled_code"]))
    return built


def copy_spark_models(con: duckdb.DuckDBPyConnection, warehouse_dir: Path, models: list[BuiltModel]) -> None:
    """Each Spark table's Parquet files into the DuckDB table of the same schema and name, each view as the same
    view, replacing them; all or nothing (one transaction)."""
    con.execute("begin")
    try:
        for model in models:
            con.execute(f'create schema if not exists "{model.schema}"')
            relation = f'"{model.schema}"."{model.name}"'
            if model.view_sql is not None:
                con.execute(f"create or replace view {relation} as {model.view_sql}")
                continue
            folder = warehouse_dir / f"{model.schema}.db" / model.name
            if not any(folder.rglob("*.parquet")):
                raise FileNotFoundError(f"Spark's table {model.schema}.{model.name} has no Parquet file in {folder}")
            partitioned = any(p.is_dir() and "=" in p.name for p in folder.iterdir())
            con.execute(
                f"create or replace table {relation} as select * from read_parquet(?, hive_partitioning = ?)",
                [str(folder / ("**/*.parquet" if partitioned else "*.parquet")), partitioned],
            )
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise

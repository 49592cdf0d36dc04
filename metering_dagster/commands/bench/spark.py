"""dbt's build on Spark beside DuckDB's, on the same landed lines (`metering bench --spark`).

Both build every model from scratch (`dbt build --full-refresh`, data tests included, unit tests excluded as in a
pipeline run) in a scratch folder beside the bench's state, so the bench's warehouse is left as it was: DuckDB in
a copy of the warehouse file, Spark (session mode, METERING_SPARK_MASTER, default local[*]) from the sources
written as Parquet the way a Spark run writes them (each landing run's lines a file of their own).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from metering_dagster.defs.transform.project import DBT_PROJECT_DIR, dbt_executable
from metering_dagster.settings import spark_master, subprocess_environment
from metering_dagster.transform.spark_marts import copy_spark_models, models_built, spark_warehouse_dir
from metering_dagster.transform.spark_sources import export_sources_to_parquet
from metering_dagster.warehouse import connect


def dbt_full_build(state_dir: Path, target: str, **environment: str) -> float:
    """Seconds of `dbt build --full-refresh` on `target` with the state folder `state_dir`."""
    command = [
        dbt_executable(), "build", "--full-refresh", "--target", target, "--quiet",
        "--exclude-resource-type", "unit_test",
        "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR),
        "--target-path", str(state_dir / "dbt_target"), "--log-path", str(state_dir / "logs"),
    ]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(
        command,
        env=subprocess_environment(METERING_STATE_DIR=str(state_dir), **environment),
        cwd=DBT_PROJECT_DIR, capture_output=True, text=True, check=False,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"dbt build on {target} failed:\n{done.stdout[-4000:]}\n{done.stderr[-2000:]}")
    return seconds


def time_spark_build(state_dir: Path) -> dict:
    """dbt's full build of the bench's warehouse on Spark and on DuckDB, in seconds (JVM start included: a Spark
    step pays it every run), with the Parquet export's and the copy back's seconds apart."""
    scratch = Path(state_dir) / "bench_spark"
    shutil.rmtree(scratch, ignore_errors=True)
    on_duckdb, on_spark = scratch / "duckdb", scratch / "spark"
    on_duckdb.mkdir(parents=True)
    shutil.copy(Path(state_dir) / "warehouse.duckdb", on_duckdb / "warehouse.duckdb")
    duckdb_seconds = dbt_full_build(on_duckdb, "local")

    sources = on_spark / "sources"
    started = time.perf_counter()
    with connect(Path(state_dir) / "warehouse.duckdb", read_only=True) as con:
        export_sources_to_parquet(con, sources)
    export_seconds = time.perf_counter() - started
    master = spark_master()
    spark_seconds = dbt_full_build(on_spark, "spark", METERING_SPARK_SOURCES=str(sources), METERING_SPARK_MASTER=master)
    started = time.perf_counter()  # what a Spark run adds after dbt: its tables into the warehouse file
    with connect(on_spark / "warehouse.duckdb") as con:
        copy_spark_models(con, spark_warehouse_dir(on_spark), models_built(on_spark / "dbt_target"))
    copy_seconds = time.perf_counter() - started
    shutil.rmtree(scratch, ignore_errors=True)
    return {
        "spark_dbt_seconds": round(spark_seconds, 2),
        "duckdb_dbt_seconds": round(duckdb_seconds, 2),
        "spark_export_seconds": round(export_seconds, 2),
        "spark_copy_back_seconds": round(copy_seconds, 2),
        "spark_master": master,
    }

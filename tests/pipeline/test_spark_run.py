"""`METERING_ENGINE=spark metering run` on the demo: the same job, its dbt steps on Spark, reconciles with Stripe as
the DuckDB run does.

The demo's first run (October's logs, Stripe's clock in the grace period after October) with the `metering` command
on Spark (`local[2]`): it must land its lines as Parquet files, build on Spark, upload, and reconcile every line
`match`. Then DuckDB's dbt builds the same models from the same sources (a copy of that run's warehouse file: the
same landed lines and landing times, the same Stripe view and ids) and every mart the Spark run left in the
warehouse file must hold DuckDB's rows, every column.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from metering_dagster.commands.bench.spark import dbt_full_build
from metering_dagster.settings import REPO_ROOT
from metering_dagster.warehouse import connect
from tests.conftest import DEMO_DIR

from .test_dbt_spark import _normalized

pytestmark = pytest.mark.slow

IN_GRACE = "2026-11-01T00:30:00Z"


def _first_demo_run(root: Path, engine: str) -> Path:
    """The demo's first run on `engine` in a folder of its own; returns the state folder."""
    state, raw = root / "state", root / "raw"
    shutil.copytree(DEMO_DIR / "raw", raw)
    (state / "dagster_home").mkdir(parents=True)
    env = {
        **os.environ,
        "METERING_STATE_DIR": str(state),
        "METERING_RAW_DIR": str(raw),
        "METERING_CONTRACT": str(DEMO_DIR / "metering.yml"),
        "DAGSTER_HOME": str(state / "dagster_home"),
        "METERING_ENGINE": engine,
        "METERING_SPARK_MASTER": "local[2]",
        "METERING_SPARK_SHUFFLE_PARTITIONS": "2",
    }
    for command in (["clock", "advance", "--to", IN_GRACE], ["run"]):
        done = subprocess.run(
            [sys.executable, "-m", "metering_dagster.cli", *command],
            env=env, capture_output=True, text=True, timeout=1800, cwd=REPO_ROOT, check=False,
        )  # fmt: skip
        assert done.returncode == 0, f"{engine}: metering {' '.join(command)}\n{done.stdout}\n{done.stderr}"
    return state


def _marts(state: Path) -> dict[str, list]:
    with connect(state / "warehouse.duckdb", read_only=True) as con:
        tables = con.execute(
            "select table_name, list(column_name order by ordinal_position) from information_schema.columns "
            "where table_schema = 'marts' group by table_name order by table_name"
        ).fetchall()
        return {
            table: sorted(
                (_normalized(row) for row in con.execute(f"select {', '.join(columns)} from marts.{table}").fetchall()),
                key=repr,
            )
            for table, columns in tables
        }


def test_a_run_on_spark_reconciles_and_its_marts_are_duckdb_s(tmp_path, dbt_manifest):
    started = time.monotonic()
    on_spark = _first_demo_run(tmp_path / "spark", "spark")
    spark_seconds = time.monotonic() - started
    on_duckdb = tmp_path / "duckdb"
    on_duckdb.mkdir()
    shutil.copy(on_spark / "warehouse.duckdb", on_duckdb / "warehouse.duckdb")
    dbt_full_build(on_duckdb, "local")

    # the lines reached Spark as the landing run's own Parquet file, and Spark built the marts
    landed = on_spark / "spark" / "sources" / "raw" / "usage_lines"
    assert [p.name for p in landed.iterdir()] == ["landing_run_1.parquet"]
    assert (on_spark / "spark" / "warehouse" / "marts.db" / "rpt_reconciliation").is_dir()

    with connect(on_spark / "warehouse.duckdb", read_only=True) as con:
        statuses = con.execute("select status, count(*) from marts.rpt_reconciliation group by all").fetchall()
    assert statuses == [("match", 24)]

    duckdb_marts, spark_marts = _marts(on_duckdb), _marts(on_spark)
    assert set(spark_marts) == {p.stem for p in (REPO_ROOT / "dbt_project" / "models" / "marts").glob("*.sql")}
    different = {
        table: (
            [r for r in rows if r not in spark_marts[table]][:2],
            [r for r in spark_marts[table] if r not in rows][:2],
        )
        for table, rows in duckdb_marts.items()
        if rows != spark_marts[table]
    }
    assert not different, different
    assert sum(map(len, spark_marts.values())) > 2_000
    print(
        f"\nthe demo's first run on Spark local[2] in {spark_seconds:.0f} s; the test {time.monotonic() - started:.0f} s"
    )

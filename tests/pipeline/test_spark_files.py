"""What the Spark engine reads and writes outside Spark: the sources as Parquet files before a dbt step
(transform/spark_sources.py) and the models Spark built copied into the warehouse file after it
(transform/spark_marts.py). No JVM here: the Parquet files are DuckDB's; tests/pipeline/test_spark_run.py runs Spark."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from metering_dagster.settings import SettingsError, check_tuning, metering_engine, spark_sources_location
from metering_dagster.transform.spark_marts import copy_spark_models, models_built
from metering_dagster.transform.spark_sources import export_sources_to_parquet
from metering_dagster.warehouse import connect

from .conftest import event


def _read(path: Path) -> list[tuple]:
    return duckdb.sql(f"select * from read_parquet('{path}') order by all").fetchall()


def test_each_landing_run_is_a_file_written_once_and_the_small_sources_whole(warehouse, tmp_path):
    location = tmp_path / "sources"
    warehouse.add_file("a.jsonl", [event("e1", "2026-10-02T00:00:00Z", "cus_acme", "api_request")])
    warehouse.land(datetime(2026, 10, 3, tzinfo=UTC))
    with connect(warehouse.path) as con:
        written = export_sources_to_parquet(con, location)
    lines = location / "raw" / "usage_lines"
    first = lines / "landing_run_1.parquet"
    assert "raw.usage_lines" in written and "contract.customers" in written and "raw.landed_files" in written
    assert [p.name for p in lines.iterdir()] == ["landing_run_1.parquet"]
    first_bytes, first_mtime = first.read_bytes(), first.stat().st_mtime_ns

    warehouse.add_file("b.jsonl", [event(f"e{i}", "2026-10-04T00:00:00Z", "cus_acme", "api_request") for i in (2, 3)])
    warehouse.land(datetime(2026, 10, 5, tzinfo=UTC))
    with connect(warehouse.path) as con:
        export_sources_to_parquet(con, location)
        landed = con.execute("select * from raw.usage_lines order by all").fetchall()
        files = con.execute("select * from raw.landed_files order by all").fetchall()
    # the first run's file untouched, the second run's lines in a file of their own; together every landed line
    assert sorted(p.name for p in lines.iterdir()) == ["landing_run_1.parquet", "landing_run_2.parquet"]
    assert (first.read_bytes(), first.stat().st_mtime_ns) == (first_bytes, first_mtime)
    assert [r[0] for r in _read(lines / "landing_run_2.parquet")] == [2, 2]
    assert duckdb.sql(f"select * from read_parquet('{lines}/*.parquet') order by all").fetchall() == landed
    # a small source replaced whole: the manifest now has both files
    assert _read(location / "raw" / "landed_files" / "part-0.parquet") == files and len(files) == 2
    assert not list(location.rglob(".*"))  # no half-written file left behind

    with connect(warehouse.path) as con:  # nothing new landed: nothing rewritten
        assert "raw.usage_lines" not in export_sources_to_parquet(con, location)
    assert (first.read_bytes(), first.stat().st_mtime_ns) == (first_bytes, first_mtime)


def test_no_line_landed_yet_gives_spark_the_columns(warehouse, tmp_path):
    with connect(warehouse.path) as con:
        export_sources_to_parquet(con, tmp_path)
        columns = [c for (c, *_) in con.execute("describe raw.usage_lines").fetchall()]
    empty = tmp_path / "raw" / "usage_lines" / "no_lines.parquet"
    assert duckdb.sql(f"select count(*) from read_parquet('{empty}')").fetchall() == [(0,)]
    assert duckdb.sql(f"select * from read_parquet('{empty}')").columns == columns


def _spark_table(warehouse_dir: Path, schema: str, table: str, select: str, partition_by: str | None = None) -> None:
    """A table's folder as Spark writes it: Parquet files (partitioned in key=value folders) beside marker files."""
    folder = warehouse_dir / f"{schema}.db" / table
    options = f", partition_by ({partition_by})" if partition_by else ""
    folder.parent.mkdir(parents=True, exist_ok=True)
    if not partition_by:
        folder.mkdir()
    duckdb.sql(f"copy ({select}) to '{folder if partition_by else folder / 'part-00000.snappy.parquet'}' "
               f"(format parquet{options})")  # fmt: skip
    (folder / "_SUCCESS").write_text("")


def _artifacts(target: Path, models: list[tuple[str, str, str, str, str]]) -> None:
    """run_results.json and manifest.json of a dbt invocation: (name, schema, materialized, status, sql)."""
    target.mkdir(parents=True)
    nodes = {
        f"model.metering.{name}": {
            "resource_type": "model", "schema": schema, "alias": name, "config": {"materialized": materialized}
        }
        for name, schema, materialized, _, _ in models
    }  # fmt: skip
    results = [
        {"unique_id": f"model.metering.{name}", "status": status, "compiled_code": sql}
        for name, _, _, status, sql in models
    ]
    results.append({"unique_id": "test.metering.not_null_x", "status": "pass", "compiled_code": "select 1"})
    (target / "manifest.json").write_text(json.dumps({"nodes": nodes}))
    (target / "run_results.json").write_text(json.dumps({"results": results}))


def test_models_spark_built_replace_their_namesakes_in_the_warehouse_file(tmp_path):
    spark = tmp_path / "spark" / "warehouse"
    _spark_table(
        spark, "intermediate", "int_events",
        "select 'cus_a' as customer_id, 1.500000000000::decimal(38,12) as value, "
        "'2026-10-01 00:00:00+00'::timestamptz as event_ts, '2026-10-01' as period",
        partition_by="period",
    )  # fmt: skip
    _spark_table(spark, "marts", "fct_totals", "select 'cus_a' as customer_id, 3::bigint as amount_cents")
    _spark_table(spark, "marts", "fct_failed", "select 1 as x")
    target = tmp_path / "target"
    _artifacts(
        target,
        [
            ("stg_lines", "staging", "view", "success", "select parse_json(payload) from raw.usage_lines"),
            ("int_events", "intermediate", "incremental", "success", ""),
            ("fct_totals", "marts", "table", "success", ""),
            ("fct_events", "marts", "view", "success", "select customer_id, value from intermediate.int_events"),
            ("fct_failed", "marts", "table", "error", ""),
        ],
    )
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:
        con.execute("create schema marts; create table marts.fct_totals as select 'old' as customer_id")
        copy_spark_models(con, spark, models_built(target))
        tables = con.execute(
            "select table_schema || '.' || table_name, table_type from information_schema.tables order by 1"
        ).fetchall()
        assert tables == [
            ("intermediate.int_events", "BASE TABLE"), ("marts.fct_events", "VIEW"), ("marts.fct_totals", "BASE TABLE")
        ]  # fmt: skip
        assert con.execute("select * from marts.fct_totals").fetchall() == [("cus_a", 3)]
        assert con.execute("select * from marts.fct_events").fetchall() == [("cus_a", Decimal("1.5"))]
        types = dict(con.execute("select column_name, column_type from (describe intermediate.int_events)").fetchall())
        assert types["value"] == "DECIMAL(38,12)" and types["event_ts"] == "TIMESTAMP WITH TIME ZONE"
        assert con.execute("select period from intermediate.int_events").fetchall() == [(datetime(2026, 10, 1).date(),)]

        # all or nothing: a table without files leaves every model as it was
        _artifacts(tmp_path / "broken", [("fct_totals", "marts", "table", "success", ""),
                                         ("fct_gone", "marts", "table", "success", "")])  # fmt: skip
        with pytest.raises(FileNotFoundError, match="fct_gone"):
            copy_spark_models(con, spark, models_built(tmp_path / "broken"))
        assert (
            con.execute("select count(*) from information_schema.tables where table_name = 'fct_gone'").fetchone()[0]
            == 0
        )


def test_the_engine_settings(monkeypatch, tmp_path):
    assert metering_engine() == "duckdb"
    monkeypatch.setenv("METERING_ENGINE", "Spark")
    assert metering_engine() == "spark"
    assert spark_sources_location(tmp_path) == str(tmp_path / "spark" / "sources")
    monkeypatch.setenv("METERING_SPARK_SOURCES", "s3://bucket/metering/")
    assert spark_sources_location(tmp_path) == "s3://bucket/metering"
    monkeypatch.setenv("METERING_ENGINE", "postgres")
    monkeypatch.setenv("METERING_SPARK_MASTER", "local[2] --conf x")
    with pytest.raises(SettingsError) as refused:
        check_tuning()
    assert refused.value.problems == [
        "METERING_ENGINE must be duckdb or spark, got 'postgres'",
        "METERING_SPARK_MASTER must be a Spark master URL such as local[*], spark://host:7077 or yarn, got "
        "'local[2] --conf x'",
    ]

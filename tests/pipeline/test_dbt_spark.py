"""The same dbt models on Apache Spark (target `spark`, session mode) give the same marts as on DuckDB.

A generated case of more than 10,000 events in two landing runs (every aggregation and price model of the demo
contract, re-sent duplicates and conflicting copies, late events, a customer removed from the contract between the
runs, a billing anchor on the 31st, and a bad line for every quarantine reason) is landed into a DuckDB warehouse
and built there; after each run the sources are exported to Parquet (metering_dagster/transform/spark_sources.py)
and the same models are built by Spark from those files. Every mart must hold the same rows: quantities and amounts
as exact decimals, the quarantine and duplicate reports row for row.
"""

from __future__ import annotations

import gzip
import json
import os
import time
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from metering_dagster.commands.bench.generate import bench_contract_yaml, customers_for, generate_month
from metering_dagster.contract import load_contract
from metering_dagster.transform.spark_sources import export_sources_to_parquet
from metering_dagster.vocabulary import aggregations, quarantine_reasons
from metering_dagster.warehouse import connect
from tests.conftest import DEMO_DIR

from .conftest import DBT_PROJECT

pytestmark = pytest.mark.slow

GONE = "cus_gone"  # in the contract for the first run only
ANCHOR_31 = "cus_anchor_31"  # periods from Oct 31 12:00: Nov 30, Dec 31 (the day clamped to the month's end)
FIRST_LANDING = datetime(2026, 11, 11, tzinfo=UTC)
SECOND_LANDING = datetime(2026, 11, 28, tzinfo=UTC)


def _contract(customers: list[str], with_gone: bool) -> str:
    doc = yaml.safe_load(bench_contract_yaml(DEMO_DIR / "metering.yml", customers))
    doc["customers"].append({"id": ANCHOR_31, "billing_anchor": "2026-10-31T12:00:00Z", "interval": "month"})
    if with_gone:
        doc["customers"].append({"id": GONE, "billing_anchor": "2026-10-01T00:00:00Z", "interval": "month"})
    doc["budgets"] = [
        {
            "key": "monthly_spend",
            "customer": "*",
            "spend": "500000",
            "thresholds": [50, 80, 100],
            "on_exceed": "notify",
        },
        {"key": "call_cap", "customer": customers[0], "meter": "api_calls", "quantity": "40", "on_exceed": "block"},
    ]
    return yaml.safe_dump(doc, sort_keys=False)


def _line(event_id, timestamp, customer, action, **extra) -> str:
    return json.dumps(
        {"event_id": event_id, "timestamp": timestamp, "customer_id": customer, "action": action, **extra}
    )


def _edge_lines(customer: str) -> list[str]:
    """Valid lines the generator does not write, and a bad line for every reason decided on the line's content."""
    tokens = "model_inference"
    return [
        # valid: RFC 3339 with an offset, fractions past microseconds, a lower-case t; exponent and decimal strings
        _line(
            "edge_rfc",
            "2026-11-02T10:00:00.1234567+02:00",
            customer,
            tokens,
            metadata={"model": "gpt-4o", "input_tokens": "12.500"},
        ),
        _line("edge_exp", "2026-11-03t10:00:00z", customer, tokens, metadata="MODEL").replace(
            '"MODEL"', '{"model":"gpt-4o-mini","input_tokens":1.5e3}'
        ),
        _line("edge_negative", 1793000000, customer, tokens, metadata={"model": "gpt-4o", "input_tokens": -40}),
        _line("edge_filtered_out", 1793000000, customer, tokens, metadata={"model": "gpt-3", "input_tokens": 5}),
        _line("edge_unique_bool", 1793000000, customer, "user_active", metadata={"user_id": True}),
        _line("edge_unique_number", 1793000000, customer, "user_active", metadata={"user_id": 7}),
        _line("edge_last_at_start", "2026-11-01T00:00:00Z", customer, "seat_update", metadata={"seats": 3}),
        # quarantined, one reason each
        "not json",
        _line("bad_missing", None, customer, tokens),
        json.dumps({"event_id": 17, "timestamp": 1793000000, "customer_id": customer, "action": tokens}),
        _line("bad_time", "2026-10-05T24:00:00Z", customer, tokens, metadata={"model": "gpt-4o", "input_tokens": 1}),
        _line("bad_future", "2027-01-01T00:00:00Z", customer, tokens, metadata={"model": "gpt-4o", "input_tokens": 1}),
        _line(
            "bad_env", 1793000000, customer, tokens, environment="live", metadata={"model": "gpt-4o", "input_tokens": 1}
        ),
        _line("bad_customer", 1793000000, "cus_nobody", tokens, metadata={"model": "gpt-4o", "input_tokens": 1}),
        _line("bad_action", 1793000000, customer, "logout"),
        _line("bad_value", 1793000000, customer, tokens, metadata={"model": "gpt-4o", "input_tokens": "many"}),
        _line(
            "bad_places", 1793000000, customer, tokens, metadata={"model": "gpt-4o", "input_tokens": "0.0000000000001"}
        ),
        _line("bad_negative_max", 1793000000, customer, "session_sample", metadata={"concurrent": -2}),
        _line("bad_range", 1793000000, customer, tokens, metadata={"model": "gpt-4o", "input_tokens": "1e16"}),
        _line("bad_dup_key", 1793000000, customer, "x").replace('"timestamp"', '"event_id":"again","timestamp"'),
        _line("bad_before_anchor", "2026-10-05T00:00:00Z", ANCHOR_31, "api_request"),
        _line("bad_gone", "2026-11-05T00:00:00Z", GONE, "api_request"),
    ]


def _age(path: Path) -> None:
    past = time.time() - 3600
    os.utime(path, (past, past))


def _write_second_run_files(raw: Path, first_run_file: Path, first_run_changed: Path, customer: str) -> None:
    """Re-sent copies (a third with a changed value: conflicts), late October events, bad files and lines."""
    resent = first_run_file.read_text().splitlines()[:60]
    conflicting = [
        line.replace('"customer_id"', '"note":"changed","customer_id"', 1) if i % 3 == 0 else line
        for i, line in enumerate(resent)
    ]
    late = [_line(f"late_{i}", 1790000000 + i * 3600, customer, "api_request") for i in range(40)]
    (raw / "resent-and-late.jsonl").write_text("\n".join(conflicting + late) + "\n")
    (raw / "edge.jsonl").write_text("\n".join(_edge_lines(customer)) + "\n")
    (raw / "bytes.jsonl").write_bytes(b'{"event_id":"caf\xe9"}\n' + b"y" * (1024 * 1024 + 10) + b"\n")
    (raw / "broken.jsonl.gz").write_bytes(gzip.compress(b"x" * 100)[:20])
    (raw / "empty.jsonl").write_bytes(b"")
    with open(os.path.join(os.fsencode(raw), b"caf\xe9-\xff.jsonl"), "wb") as f:
        f.write(_line("bad_name", 1793000000, customer, "api_request").encode() + b"\n")
    for path in (raw / "broken.jsonl.gz", raw / "empty.jsonl"):
        _age(path)
    with open(first_run_file, "a") as f:  # a landed file that grew: its new lines land
        f.write(_line("appended", 1793000000, customer, "api_request") + "\n")
    changed = first_run_changed.read_text()  # a landed file rewritten: refused, quarantined
    first_run_changed.write_text(" " + changed)


class SparkBuild:
    """dbt on the `spark` target in this process (session mode), reading the sources exported as Parquet."""

    def __init__(self, state: Path, monkeypatch):
        self.state = state
        self.sources = state / "sources"
        self.monkeypatch = monkeypatch

    def run(self, warehouse_path: Path) -> None:
        from dbt.cli.main import dbtRunner

        with connect(warehouse_path, read_only=True) as con:
            export_sources_to_parquet(con, self.sources)
        for name, value in {
            "METERING_STATE_DIR": str(self.state),
            "METERING_SPARK_SOURCES": str(self.sources),
            "METERING_SPARK_MASTER": "local[2]",
            "METERING_SPARK_SHUFFLE_PARTITIONS": "4",
        }.items():
            self.monkeypatch.setenv(name, value)
        result = dbtRunner().invoke(
            [
                "run", "--target", "spark", "--quiet",
                "--project-dir", str(DBT_PROJECT), "--profiles-dir", str(DBT_PROJECT),
                "--target-path", str(self.state / "target"), "--log-path", str(self.state / "logs"),
            ]
        )  # fmt: skip
        failures = [f"{r.node.name}: {r.status} {r.message}" for r in (result.result or []) if r.status != "success"]
        assert result.success and not failures, f"dbt on Spark failed: {result.exception} {failures}"

    def rows(self, relation: str, columns: list[str]) -> Counter:
        from pyspark.sql import SparkSession
        from pyspark.sql.types import TimestampType

        spark = SparkSession.builder.getOrCreate()  # the session dbt-spark started in this process
        frame = spark.table(relation)
        # instants as naive UTC (the session's zone is UTC), as DuckDB's are normalized below
        selected = [
            f"cast({c} as timestamp_ntz) as {c}" if isinstance(frame.schema[c].dataType, TimestampType) else c
            for c in columns
        ]
        return Counter(_normalized(tuple(row)) for row in frame.selectExpr(*selected).collect())

    @staticmethod
    def stop() -> None:
        """Stop the session dbt-spark started (its JVM would hold a driver's memory for the rest of the tests)."""
        from pyspark import SparkContext

        context = SparkContext._active_spark_context  # the running one, if dbt got as far as starting it
        if context is not None:
            context.stop()


def _normalized(value):
    """A value compared across engines: decimals by value (1.50 = 1.5), instants in naive UTC, lists as tuples."""
    assert not isinstance(value, float), f"a float in a mart: {value!r}"
    if isinstance(value, Decimal):
        return value.normalize() if value else Decimal(0)
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    if isinstance(value, list | tuple):
        return tuple(_normalized(v) for v in value)
    return value


def _duckdb_rows(warehouse, relation: str, columns: list[str]) -> Counter:
    return Counter(_normalized(tuple(row)) for row in warehouse.query(f"select {', '.join(columns)} from {relation}"))


@pytest.fixture
def spark(tmp_path, monkeypatch):
    build = SparkBuild(tmp_path / "spark", monkeypatch)
    yield build
    build.stop()


def test_marts_on_spark_equal_marts_on_duckdb(warehouse, dbt, spark):
    started = time.monotonic()
    customers = customers_for(10_000)
    everyone = [*customers, ANCHOR_31, GONE]

    # first run: a month of usage with the customer that leaves
    warehouse.write_contract(_contract(customers, with_gone=True))
    contract = load_contract(warehouse.state_dir / "metering.yml")
    first = generate_month(contract, everyone, warehouse.raw_dir, n_events=7_000, seed=7, days=31)
    warehouse.land(FIRST_LANDING)
    with connect(warehouse.path) as con:
        con.execute("insert into ops.stripe_clock_readings values (?, ?)", [FIRST_LANDING, FIRST_LANDING])
    seconds = Counter()
    timed = time.monotonic()
    dbt.run(warehouse.state_dir, "run")
    seconds["DuckDB"] += time.monotonic() - timed
    timed = time.monotonic()
    spark.run(warehouse.path)
    seconds["Spark"] += time.monotonic() - timed

    # second run: the customer left the contract; more usage, re-sent and late copies, bad lines of every kind
    warehouse.write_contract(_contract(customers, with_gone=False))
    second = generate_month(
        contract, everyone, warehouse.raw_dir, n_events=3_500, seed=8, first_id=7_000, start_day=31, days=15
    )
    _write_second_run_files(warehouse.raw_dir, first.files[0], first.files[1], customers[0])
    warehouse.land(SECOND_LANDING)
    with connect(warehouse.path) as con:
        con.execute("insert into ops.stripe_clock_readings values (?, ?)", [SECOND_LANDING, SECOND_LANDING])
    timed = time.monotonic()
    dbt.run(warehouse.state_dir, "run")
    seconds["DuckDB"] += time.monotonic() - timed
    timed = time.monotonic()
    spark.run(warehouse.path)
    seconds["Spark"] += time.monotonic() - timed
    built = time.monotonic() - started

    # the case is what it says
    assert first.events + second.events >= 10_000
    reasons = {r for (r,) in warehouse.query("select distinct reason from marts.rpt_quarantined_events")}
    assert reasons == set(quarantine_reasons())
    (duplicates, conflicts), *_ = warehouse.query(
        "select count(*), count(*) filter (where is_conflict) from marts.rpt_duplicate_events"
    )
    assert duplicates > 100 and conflicts > 0
    aggregated = {
        a for (a,) in warehouse.query("select distinct aggregation from intermediate.int_usage_periods_aggregated")
    }
    assert aggregated == set(aggregations())
    assert {m for (m,) in warehouse.query("select distinct price_model from marts.fct_invoice_lines_expected")} == {
        "graduated", "volume", "package", "per_unit",
    }  # fmt: skip

    marts = warehouse.query(
        "select table_name, list(column_name order by ordinal_position) from information_schema.columns "
        "where table_schema = 'marts' group by table_name order by table_name"
    )
    assert {t for t, _ in marts} == {p.stem for p in (DBT_PROJECT / "models" / "marts").glob("*.sql")}
    different = {}
    for table, columns in marts:
        ours, theirs = _duckdb_rows(warehouse, f"marts.{table}", columns), spark.rows(f"marts.{table}", columns)
        if ours != theirs:
            different[table] = (sum(ours.values()), sum(theirs.values()), list((ours - theirs).items())[:3],
                                list((theirs - ours).items())[:3])  # fmt: skip
    assert not different, different
    # the money: every shadow invoice line's amount to the cent
    assert sum(_duckdb_rows(warehouse, "marts.fct_invoice_lines_expected", ["amount_cents"]).values()) > 0
    print(
        f"\n{first.events + second.events} events in two runs: generated, landed and built on both engines in "
        f"{built:.0f} s; dbt on DuckDB {seconds['DuckDB']:.0f} s, on Spark local[2] (export included) "
        f"{seconds['Spark']:.0f} s"
    )

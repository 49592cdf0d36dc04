"""`metering bench` end to end at a small size: the real job against the embedded emulator, a full run in the bench's
process, then a run with 0.1% new events and a run with nothing new, each `metering run` in a fresh process."""

import importlib.util
import json

import pytest

from tests.bench.script import run_bench_script

pytestmark = pytest.mark.slow  # three runs of the pipeline

EVENTS = 20_000  # 20 customers, the bench's smallest
SPARK_HELPER = "metering_dagster.commands.bench.spark"
SKIP_HELPER = "metering_dagster.transform.freshness"  # the decision that a run has nothing new


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    """(the report, the printed table) of one bench run; with the Spark timing when its helper is there."""
    tmp_path = tmp_path_factory.mktemp("bench")
    results = tmp_path / "results"
    spark = importlib.util.find_spec(SPARK_HELPER) is not None
    process = run_bench_script(
        tmp_path,
        f"""
        from pathlib import Path
        from metering_dagster.commands.bench.run import run_bench
        from metering_dagster.commands.bench.table import format_table
        report = run_bench(
            {EVENTS}, workdir=Path({str(tmp_path / "work")!r}), results=Path({str(results)!r}), crossings=0,
            spark={spark!r},
        )
        print(format_table(report))
        """,
        timeout=1200,
    )
    return json.loads((results / f"bench-{EVENTS}.json").read_text()), process.stdout


def test_the_full_run_reports_throughput_floor_ratio_requests_and_memory(bench):
    report, _ = bench
    full = report["full_run"]
    assert report["events"] == EVENTS and report["customers"] == 20
    assert report["duckdb_floor_seconds"] > 0 and report["ratio_to_floor"] > 1
    assert 0 < report["peak_memory_mb"] < 2048
    pages = report["console_pages_seconds"]  # every console page answered, each timed
    assert {"customers", "customer", "line", "statement"} <= set(pages) and all(v > 0 for v in pages.values())
    assert full["wall_seconds"] >= sum(full["stages"].values()) > 0
    # every customer x meter of the month is reported, 100 meter events a stream request at most
    touched = report["customers"] * report["meters"]
    assert full["customer_meter_periods_touched"] == full["stripe_events_sent"] == touched
    assert full["stripe_upload_requests"] == -(-touched // 100)
    assert full["stripe_requests"] <= touched


def test_a_run_with_a_thousandth_new_lands_all_of_it_in_a_fresh_process(bench):
    report, _ = bench
    small = report["small_run"]
    assert small["exit_code"] == 0
    assert small["new_events"] == EVENTS // 1000 and small["new_late"] >= 1 and small["new_duplicates"] >= 1
    landed = small["metadata"]["landed_usage_lines"]
    # the one new file, every line of it (the month's files are skipped unread)
    assert landed["files_landed"] == 1 and landed["lines_read"] == small["new_lines"]
    assert landed["lines_landed"] + landed["lines_quarantined_at_landing"] + landed["lines_blank"] == small["new_lines"]
    # the new events move some totals, which are sent again
    assert small["metadata"]["stripe_usage_report"]["events_sent"] > 0
    assert small["wall_seconds"] >= sum(small["steps"].values()) > 0
    assert small["before_the_run_seconds"] > 0  # the process's start is in the figure


def test_a_run_with_nothing_new_sends_nothing_and_exits_0(bench):
    report, _ = bench
    idle = report["idle_run"]
    assert idle["exit_code"] == 0 and idle["wall_seconds"] > 0
    metadata = idle.get("metadata", {})  # none when the run decided before starting Dagster's
    assert metadata.get("landed_usage_lines", {}).get("lines_read", 0) == 0
    assert metadata.get("stripe_usage_report", {}).get("events_sent", 0) == 0
    if importlib.util.find_spec(SKIP_HELPER) is None:  # before runs with nothing new skipped dbt
        assert set(idle["dbt_invocations"]) <= {"metering_dbt_models", "reconciliation_dbt_models"}
    else:
        assert idle["dbt_invocations"] == [], idle["summary_first_line"]


def test_landing_alone_is_timed_on_every_line_of_the_month(bench):
    report, _ = bench
    landing, generated = report["landing"], report["generated"]
    assert landing["lines"] == EVENTS + generated["duplicates"] + generated["bad_lines"]
    assert landing["lines_per_second"] == pytest.approx(landing["lines"] / landing["seconds"], rel=0.1)


def test_each_figure_is_printed_with_its_target_and_verdict(bench):
    report, printed = bench
    names = [figure["name"] for figure in report["figures"]]
    assert len(names) == 5
    for figure in report["figures"]:
        line = next(line for line in printed.splitlines() if line.startswith(figure["name"]))
        assert figure["verdict"] in line and ("met" in figure["verdict"] or "missed" in figure["verdict"])
    assert any(line.startswith("DuckDB floor") for line in printed.splitlines())


def test_the_bench_times_dbt_on_spark_beside_duckdb(bench):
    if importlib.util.find_spec(SPARK_HELPER) is None:
        pytest.skip("commands/bench/spark.py is not there yet")
    report, printed = bench
    spark = report["spark"]
    assert spark["spark_dbt_seconds"] > 0 and spark["duckdb_dbt_seconds"] > 0
    assert any(line.startswith("dbt build on Spark") for line in printed.splitlines())

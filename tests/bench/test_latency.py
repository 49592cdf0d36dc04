"""`metering bench --latency-only` at a small size: a block budget crossed by one new file per customer, each
noticed by the poll, built by `metering run --budgets` in a process of its own and answered `block` by a real
`metering serve`."""

import json

import duckdb
import pytest

from tests.bench.script import run_bench_script

pytestmark = pytest.mark.slow  # a full run, then two budget runs and the API server

EVENTS = 20_000  # 20 customers, the bench's smallest


def test_each_crossing_is_answered_block_and_timed_from_the_files_rename(tmp_path):
    results, work = tmp_path / "results", tmp_path / "work"
    run_bench_script(
        tmp_path,
        f"""
        from pathlib import Path
        from metering_dagster.commands.bench.run import run_bench
        run_bench({EVENTS}, workdir=Path({str(work)!r}), results=Path({str(results)!r}), keep=True,
                  latency_only=True, crossings=2, poll_interval=0.5)
        """,
        timeout=900,
    )
    latency = json.loads((results / f"bench-latency-{EVENTS}.json").read_text())["latency"]

    assert latency["crossings"] == 2 and latency["calls_to_block"] == EVENTS // 20 + 1
    crossed = [c["customer"] for c in latency["by_crossing"]]
    assert crossed == ["cus_bench_00000", "cus_bench_00001"]
    for crossing in latency["by_crossing"]:
        # noticed within one poll, then one budget run whose process answered before or just after its exit
        assert 0 <= crossing["waiting_for_the_poll"] <= 0.5 + 2  # the poll, and a loaded machine
        assert 0 < crossing["run_process"] and crossing["seconds"] > 0
        steps = crossing["inside_the_run"]
        assert {"before_the_run", "metering_dbt_models", "analyst_marts", "after_the_run"} <= set(steps)
        assert "stripe_usage_report" not in steps
    assert latency["seconds"]["p50"] <= latency["seconds"]["p95"] <= latency["seconds"]["max"]

    # The month blocked nobody: exactly the crossed customers are blocked, by the budget the bench added.
    con = duckdb.connect(str(work / "state" / "analytics.duckdb"), read_only=True)
    try:
        blocked = con.execute("select customer_id, reasons from marts.fct_entitlements where access = 'block'")
        rows = sorted(blocked.fetchall())
    finally:
        con.close()
    assert [r[0] for r in rows] == crossed
    assert all(r[1] and r[1][0].startswith("api_call_cap: 1001 of 1000 call") for r in rows), rows

"""The analysts' copy opens in the DuckDB CLI analysts can install (`duckdb-cli` from PyPI, in requirements.lock)."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

import duckdb

from metering_dagster.serving.publish import publish_marts

DUCKDB_CLI = Path(sys.executable).parent / "duckdb"
ROWS = "select customer_id, meter, period_start, amount_cents, quantity from marts.rpt_reconciliation order by 1"


def cli_rows(path: Path) -> list[list[str]]:
    assert DUCKDB_CLI.exists(), "the DuckDB CLI comes with requirements.lock (duckdb-cli); run `make venv`"
    done = subprocess.run(
        [str(DUCKDB_CLI), "-readonly", "-csv", str(path), "-c", ROWS],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return list(csv.reader(io.StringIO(done.stdout)))[1:]


def test_the_cli_opens_the_copy_read_only_after_a_first_and_an_appending_publish(tmp_path):
    warehouse, target = tmp_path / "warehouse.duckdb", tmp_path / "analytics.duckdb"
    # a copy published by DuckDB 2 in its own storage (as before): written anew, not appended to
    old = duckdb.connect(str(target))
    old.execute("create table t as select 1 as x")
    old.close()
    con = duckdb.connect(str(warehouse))
    con.execute("create schema marts")
    con.execute("""create table marts.rpt_reconciliation as select 'cus_acme' as customer_id, 'api_calls' as meter,
                   timestamptz '2026-10-01 00:00:00+00' as period_start, 93459::bigint as amount_cents,
                   353882.5::decimal(38, 12) as quantity, 1::bigint as landing_run_id""")
    publish_marts(con, target, generation="g1")
    assert cli_rows(target) == [["cus_acme", "api_calls", "2026-10-01 00:00:00+00", "93459", "353882.500000000000"]]

    con.execute("insert into marts.rpt_reconciliation values ('cus_beta', 'storage', '2026-10-01', 1, 0.1, 2)")
    publish_marts(con, target, generation="g1")  # appended to the published file
    con.close()
    assert [row[0] for row in cli_rows(target)] == ["cus_acme", "cus_beta"]

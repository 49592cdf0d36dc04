"""`metering query --format table|csv|json` on the analysts' copy: every column, exact values."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from metering_dagster.serving.publish import publish_marts

REPO_ROOT = Path(__file__).resolve().parents[2]
SQL = "select * from marts.rpt_reconciliation order by customer_id"
# Twelve columns, as wide as the real mart: a table used to show 9 of them.
MART = """create table marts.rpt_reconciliation as select * from (values
    ('cus_acme', 'api_calls', timestamptz '2026-10-01 00:00:00+00', timestamptz '2026-11-01 00:00:00+00',
     353882.000000000000::decimal(38, 12), 353882.000000000000::decimal(38, 12), 93459::bigint, 93459::bigint,
     'in_1, "draft"', 'match', true, 0.1::decimal(38, 12)),
    ('cus_beta', 'storage_gb_hours', timestamptz '2026-10-15 12:30:00+00', NULL,
     -2.5::decimal(38, 12), NULL, 0::bigint, NULL, NULL, 'missing_in_stripe', false, 12345678901234.123456789012))
    t(customer_id, meter, period_start, period_end, our_quantity, stripe_quantity, our_amount_cents,
      stripe_amount_cents, stripe_invoice_id, status, is_final, note_quantity)"""


@pytest.fixture
def analytics(metering_env) -> Path:
    state = metering_env["state"]
    state.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(state / "warehouse.duckdb"))
    con.execute("create schema marts")
    con.execute(MART)
    publish_marts(con, state / "analytics.duckdb")
    con.close()
    return state / "analytics.duckdb"


def query(fmt: str, columns: int = 80) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "metering_dagster.cli", "query", SQL, "--format", fmt],
        check=False,
        env={**os.environ, "COLUMNS": str(columns)},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def expected(analytics: Path) -> tuple[list[str], list[tuple]]:
    con = duckdb.connect(str(analytics), read_only=True)
    try:
        result = con.execute(SQL)
        return [d[0] for d in result.description], result.fetchall()
    finally:
        con.close()


def test_csv_parses_and_equals_the_query_rows_exactly(analytics):
    columns, rows = expected(analytics)
    parsed = list(csv.reader(io.StringIO(query("csv"))))
    assert parsed[0] == columns
    assert len(parsed) == 1 + len(rows)
    for got, row in zip(parsed[1:], rows):
        for text, value in zip(got, row):
            if value is None:
                assert text == ""
            elif isinstance(value, Decimal):
                assert Decimal(text) == value and not text.endswith(".0")  # exact, without trailing zeros
            elif isinstance(value, bool):
                assert text == str(value).lower()
            elif isinstance(value, int):
                assert int(text) == value
            elif hasattr(value, "isoformat"):
                assert text == value.isoformat()
            else:
                assert text == value
    assert parsed[2][11] == "12345678901234.123456789012"  # beyond a float's 15-17 digits


def test_json_is_one_array_of_objects_with_decimals_as_strings(analytics):
    columns, rows = expected(analytics)
    data = json.loads(query("json"))
    assert [list(o) for o in data] == [columns] * len(rows)
    acme, beta = data
    assert acme["our_quantity"] == "353882" and acme["our_amount_cents"] == 93459 and acme["is_final"] is True
    assert acme["period_start"] == "2026-10-01T00:00:00+00:00"
    assert beta["period_end"] is None and beta["note_quantity"] == "12345678901234.123456789012"
    assert beta["our_quantity"] == "-2.5"


def test_a_table_wider_than_the_terminal_keeps_every_column(analytics):
    columns, _ = expected(analytics)
    narrow = query("table", columns=80)
    for column in columns:
        assert narrow.count(f"\n{column} ") == 2, column  # one row at a time, every column on its own line
    assert "-[ row 2 ]" in narrow and "(2 rows)" in narrow
    wide = query("table", columns=400).splitlines()
    assert wide[0].split(" | ")[-1].strip() == columns[-1] and len(wide[0].split(" | ")) == len(columns)
    assert "353882" in wide[2] and "NULL" in wide[3]


def test_a_reader_that_stops_early_ends_the_query_quietly(metering_env):
    """`metering query ... | head` under `set -o pipefail`: exit 0 and no BrokenPipeError traceback."""
    state = metering_env["state"]
    state.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(state / "warehouse.duckdb"))
    con.execute("create schema marts")
    con.execute("create table marts.big as select range as i, range::decimal(18, 6) as q from range(200000)")
    publish_marts(con, state / "analytics.duckdb")
    con.close()
    command = f"{sys.executable} -m metering_dagster.cli query 'select * from marts.big' --format csv | head -2"
    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
        env=dict(os.environ),
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "i,q\n0,0\n", "")

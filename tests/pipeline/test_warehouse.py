"""`warehouse.insert_rows`: every multi-row write of the pipeline goes through it (ledger, snapshot, period close)."""

from datetime import UTC, datetime
from decimal import Decimal

import duckdb

from metering_dagster.warehouse import insert_rows


def test_insert_rows_keeps_values_exact_and_upserts(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute(
        "create table t (k varchar primary key, ts timestamptz, q decimal(38, 12), n bigint, ok boolean, note varchar)"
    )
    row_sql = "(?, to_timestamp(?::BIGINT), ?::DECIMAL(38, 12), ?::BIGINT, ?::BOOLEAN, ?)"
    insert_rows(
        con,
        "INSERT INTO t",
        row_sql,
        [
            ["a", 1_790_000_000, Decimal("0.000000000001"), None, True, None],  # `note` is NULL in every row
            ["b", None, Decimal("12345678901234567890.123456789012"), 2**40, None, None],
        ],
    )
    insert_rows(
        con,
        "INSERT INTO t",
        "(?, ?, ?, ?, ?, ?)",
        [["a", datetime(2026, 10, 1, tzinfo=UTC), Decimal("3"), 7, False, "again"]],
        tail="ON CONFLICT (k) DO UPDATE SET q = excluded.q, note = excluded.note",
    )
    insert_rows(con, "INSERT INTO t", row_sql, [])  # nothing to write is not an error
    rows = dict((r[0], r[1:]) for r in con.execute("select k, ts, q, n, ok, note from t").fetchall())
    assert rows["a"][1:] == (Decimal("3"), None, True, "again")
    assert rows["a"][0] == datetime.fromtimestamp(1_790_000_000, tz=UTC)
    assert rows["b"] == (None, Decimal("12345678901234567890.123456789012"), 2**40, None, None)
    assert con.execute("select count(*) from t").fetchone()[0] == 2

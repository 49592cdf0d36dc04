"""The floor: DuckDB alone, one query, parsing, deduping and aggregating the same files."""

from __future__ import annotations

import time
from pathlib import Path

import duckdb

from metering_dagster.contract import Contract


def _value_sql(path: str | None) -> str:
    if path is None:
        return "1"
    json_path = "$." + ".".join(f'"{p}"' for p in path.split("."))
    return f"try_cast(j ->> '{json_path}' as decimal(38, 12))"


def floor_query(raw_glob: str, contract: Contract) -> str:
    cases = " ".join(f"when '{m.action}' then {_value_sql(m.value_path)}" for m in contract.meters)
    return f"""
    with raw as (
        select json as j, filename
        from read_json_objects('{raw_glob}', format = 'newline_delimited', ignore_errors = true, filename = true)
    ),
    events as (
        select j ->> 'event_id' as event_id, j ->> 'customer_id' as customer_id, j ->> 'action' as action,
               to_timestamp(try_cast(j ->> 'timestamp' as bigint)) as ts, j, filename
        from raw
        where j ->> 'event_id' is not null
    ),
    deduped as (
        select * from events qualify row_number() over (partition by event_id order by filename) = 1
    )
    select customer_id, action, date_trunc('month', ts) as period, count(*) as events,
           sum(case action {cases} end) as quantity
    from deduped
    group by all
    """


def duckdb_floor_seconds(raw_dir: Path, contract: Contract, threads: int = 2) -> tuple[float, int]:
    """(seconds, result rows) for the one-shot query on every *.jsonl under raw_dir."""
    con = duckdb.connect()
    con.execute(f"set threads = {threads}")
    con.execute("set enable_progress_bar = false")  # the bench prints its own table
    started = time.perf_counter()
    rows = con.execute(floor_query(str(raw_dir / "**" / "*.jsonl"), contract)).fetchall()
    seconds = time.perf_counter() - started
    con.close()
    return seconds, len(rows)

"""The hourly chart's value of each hour follows the meter's aggregation over that hour's events."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import duckdb

from metering_dagster.serving.console.queries import HOURLY_VALUE, Meter, hourly_usage
from metering_dagster.vocabulary import aggregations

PERIOD = datetime(2026, 11, 1, tzinfo=UTC)


def test_each_aggregation_over_the_hours_events():
    con = duckdb.connect()
    con.execute("create schema marts")
    con.execute(
        """create table marts.fct_metered_events (customer_id varchar, meter varchar, period_start timestamptz,
               event_ts timestamptz, value decimal(38, 12), value_key varchar)"""
    )
    rows = [
        ("sum", "2026-11-01 10:05", "2.5", None),
        ("sum", "2026-11-01 10:55", "-1", None),  # a correction lowers the hour
        ("count", "2026-11-01 10:05", "1", None),
        ("count", "2026-11-01 10:06", "1", None),
        ("max", "2026-11-01 10:05", "7", None),
        ("max", "2026-11-01 10:50", "3", None),
        ("unique_count", "2026-11-01 10:05", None, "string:u1"),
        ("unique_count", "2026-11-01 10:06", None, "string:u1"),  # the same user once
        ("unique_count", "2026-11-01 10:07", None, "string:u2"),
        ("last_ever", "2026-11-01 10:50", "4", None),
        ("last_ever", "2026-11-01 10:05", "9", None),  # earlier, though it came second
    ]
    con.executemany(
        "insert into marts.fct_metered_events values ('c', ?, ?, ?::timestamptz, ?, ?)",
        [(meter, PERIOD, f"{ts}+00", value, key) for meter, ts, value, key in rows],
    )
    meters = {a: Meter(a, a, "unit", a) for a in ("sum", "count", "max", "unique_count", "last_ever")}
    got = {meter: (value, events) for meter, _hour, value, events in hourly_usage(con, "c", PERIOD, meters)}
    assert got == {
        "sum": (Decimal("1.5"), 2),
        "count": (Decimal(2), 2),
        "max": (Decimal(7), 2),
        "unique_count": (Decimal(2), 3),
        "last_ever": (Decimal(4), 2),
    }


def test_every_aggregation_has_an_hourly_value():
    assert set(HOURLY_VALUE) == set(aggregations())

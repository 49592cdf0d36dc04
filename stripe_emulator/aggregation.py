"""Meter aggregation over [start, end): sum, count, last; with event_time_window only the latest event of each
window counts. Canceled events never count. Exact decimals."""

from __future__ import annotations

from decimal import Decimal

WINDOW_SECONDS = {"hour": 3600, "day": 86400}


def aggregate(tx, meter: dict, customer: str, start: int, end: int, after_seq: int = 0) -> Decimal:
    """`after_seq`: only the events received after that one count (a billing alert counts usage from its creation)."""
    rows = tx.conn.execute(
        "SELECT value, ts, seq FROM meter_events WHERE meter = ? AND customer = ? AND ts >= ? AND ts < ? "
        "AND canceled_at IS NULL AND seq > ?",
        (meter["id"], customer, start, end, after_seq),
    ).fetchall()
    return aggregate_rows(meter, rows)


def aggregate_rows(meter: dict, rows) -> Decimal:
    """rows: (value text, timestamp, receipt sequence)."""
    formula = meter["default_aggregation"]["formula"]
    window = meter.get("event_time_window") or None
    if window:
        size = WINDOW_SECONDS[window]
        latest: dict = {}
        for r in rows:
            key = r[1] // size
            if key not in latest or (r[1], r[2]) > (latest[key][1], latest[key][2]):
                latest[key] = r
        rows = list(latest.values())
    if formula == "count":
        return Decimal(len(rows))
    if formula == "last":
        if not rows:
            return Decimal(0)
        return Decimal(max(rows, key=lambda r: (r[1], r[2]))[0])
    return sum((Decimal(r[0]) for r in rows), Decimal(0))


def json_number(d: Decimal):
    """A JSON number: int when whole, else float (Stripe's `aggregated_value` is a float)."""
    if d == d.to_integral_value():
        return int(d)
    return float(d)

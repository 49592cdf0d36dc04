"""Budget alerts: the thresholds a customer's usage reached, or fell back below, in its current billing period.

`evaluate_alerts` compares `marts.fct_budget_status` (the rows of the period that contains Stripe's now: a budget
starts over with each period) with the alerts already in the outbox `ops.budget_alerts`, and adds the new ones in
one transaction:

- `budget.threshold_reached` the first time usage reaches a threshold in a period, in ascending order (80 before
  100 when one run crosses both);
- `budget.threshold_cleared` when usage falls back below a threshold of 100 % or more of a `block` budget whose
  last alert was `reached` (a negative correction lifts the block); crossing it again gives a new `reached`.
  Thresholds of `notify` budgets, and those under 100 %, are never cleared: each is announced once a period.

Each alert's identifier (the webhook-id) is a hash of its budget, customer, period, threshold and sequence (1 for
the first reach, 2 for its clear, 3 for the next reach ...), so an alert always has the same id and a re-run cannot
create it twice. Its JSON body is written once, here, and every delivery attempt sends those bytes. An alert is
`pending` (to send) when METERING_WEBHOOK_URL is set, else `recorded`: kept and printed, never sent later.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import duckdb

from metering_dagster.display import quantity
from metering_dagster.schema import ensure_budget_alert_tables
from metering_dagster.settings import webhook_settings

REACHED = "budget.threshold_reached"
CLEARED = "budget.threshold_cleared"
# a block budget's thresholds from here up lift the block when usage falls back below them
CLEARABLE_FROM_PERCENT = 100
STATUS_MART = "marts.fct_budget_status"


@dataclass(frozen=True)
class Alert:
    alert_id: str
    alert_type: str
    budget_key: str
    customer_id: str
    period_start: datetime
    period_end: datetime
    threshold_percent: int
    sequence: int
    used: Decimal | None  # None: a line of the period too large to price
    limit_value: Decimal
    unit: str
    access: str
    as_of: datetime | None
    payload: str
    status: str

    def line(self) -> str:
        """One line for a person: `budget.threshold_reached api_call_cap cus_globex 2026-11-01: 100 % (25 of 20
        call), access block`."""
        used = "too large to price" if self.used is None else quantity(self.used)
        return (
            f"{self.alert_type} {self.budget_key} {self.customer_id} {iso_utc(self.period_start)[:10]}: "
            f"{self.threshold_percent} % ({used} of {quantity(self.limit_value)} {self.unit}), "
            f"access {self.access}"
        )


def iso_utc(moment: datetime) -> str:
    """ISO 8601 in UTC with a `Z`: `2026-11-01T00:00:00Z`."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def decimal_text(value: Decimal | None) -> str | None:
    """An exact decimal string without trailing zeros (`25.000000000000` -> `25`), never a float; None stays None
    (the mart's spend of a period with a line too large to price)."""
    return None if value is None else quantity(value, grouped=False)


def alert_id(budget_key: str, customer_id: str, period_start: datetime, threshold_percent: int, sequence: int) -> str:
    """The alert's webhook-id: the same alert always gets the same id (no `.`, as Standard Webhooks asks)."""
    key = json.dumps([budget_key, customer_id, iso_utc(period_start), threshold_percent, sequence])
    return "msg_" + hashlib.sha256(key.encode()).hexdigest()[:32]


def payload_json(alert_type: str, row: dict, threshold_percent: int) -> str:
    """The webhook body (compact JSON; keys in this order)."""
    return json.dumps(
        {
            "type": alert_type,
            "budget": row["budget_key"],
            "customer_id": row["customer_id"],
            "period_start": iso_utc(row["period_start"]),
            "period_end": iso_utc(row["period_end"]),
            "threshold_percent": threshold_percent,
            "used": decimal_text(row["used"]),
            "limit": decimal_text(row["limit_value"]),
            "unit": row["unit"],
            "access": row["access"],
            "as_of": iso_utc(row["as_of"]) if row["as_of"] is not None else None,
        },
        separators=(",", ":"),
    )


def _current_rows(con: duckdb.DuckDBPyConnection) -> list[dict]:
    schema, _, table = STATUS_MART.partition(".")
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?", [schema, table]
    ).fetchone()[0]
    if not exists:
        raise RuntimeError(f"{STATUS_MART} does not exist yet: dbt builds it before budget alerts are evaluated")
    cursor = con.execute(
        f"""SELECT customer_id, budget_key, unit, period_start, period_end, used, limit_value,
                   coalesce(thresholds_reached, []) AS thresholds_reached, on_exceed, access, as_of
            FROM {STATUS_MART} WHERE is_current ORDER BY customer_id, budget_key, period_start"""
    )
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, r)) for r in cursor.fetchall()]


def _last_alerts(con: duckdb.DuckDBPyConnection) -> dict[tuple, dict[int, tuple[str, int]]]:
    """(budget, customer, period start) -> {threshold: (type, sequence) of its latest alert}, current periods only."""
    rows = con.execute(
        f"""SELECT a.budget_key, a.customer_id, a.period_start, a.threshold_percent, a.alert_type, a.sequence
            FROM ops.budget_alerts a
            WHERE EXISTS (SELECT 1 FROM {STATUS_MART} s WHERE s.is_current AND s.budget_key = a.budget_key
                            AND s.customer_id = a.customer_id AND s.period_start = a.period_start)
            QUALIFY row_number() OVER (
                PARTITION BY a.budget_key, a.customer_id, a.period_start, a.threshold_percent
                ORDER BY a.sequence DESC) = 1"""
    ).fetchall()
    last: dict[tuple, dict[int, tuple[str, int]]] = {}
    for budget, customer, period_start, threshold, kind, sequence in rows:
        last.setdefault((budget, customer, period_start), {})[threshold] = (kind, sequence)
    return last


def _changes(row: dict, mine: dict[int, tuple[str, int]]) -> list[tuple[str, int, int]]:
    """(alert type, threshold, sequence) of the row's new alerts, given the latest alert of each of its thresholds:
    clears highest first, then reaches lowest first."""
    reached = set(row["thresholds_reached"])
    clears = [
        (CLEARED, t, seq + 1)
        for t, (kind, seq) in sorted(mine.items(), reverse=True)
        if kind == REACHED and t not in reached and row["on_exceed"] == "block" and t >= CLEARABLE_FROM_PERCENT
    ]
    reaches = []
    for t in sorted(reached):
        kind, seq = mine.get(t, (None, 0))
        if kind != REACHED:
            reaches.append((REACHED, t, seq + 1))
    return clears + reaches


def evaluate_alerts(
    con: duckdb.DuckDBPyConnection, *, evaluated_at: datetime, webhook_configured: bool | None = None
) -> list[Alert]:
    """Add the new alerts of the current periods to `ops.budget_alerts` (module doc) and return them, in creation
    order. `webhook_configured` (default: METERING_WEBHOOK_URL is set) makes them `pending` (to send), else
    `recorded`."""
    if evaluated_at.tzinfo is None:
        raise ValueError("evaluated_at must carry a time zone")
    if webhook_configured is None:
        webhook_configured = webhook_settings().url is not None
    status = "pending" if webhook_configured else "recorded"
    ensure_budget_alert_tables(con)
    con.begin()
    try:
        rows = _current_rows(con)
        last = _last_alerts(con)
        order = con.execute("SELECT coalesce(max(creation_order), 0) FROM ops.budget_alerts").fetchone()[0]
        created: list[Alert] = []
        for row in rows:
            key = (row["budget_key"], row["customer_id"], row["period_start"])
            for alert_type, threshold, sequence in _changes(row, last.get(key, {})):
                created.append(
                    Alert(
                        alert_id=alert_id(*key, threshold, sequence),
                        alert_type=alert_type,
                        budget_key=row["budget_key"],
                        customer_id=row["customer_id"],
                        period_start=row["period_start"],
                        period_end=row["period_end"],
                        threshold_percent=threshold,
                        sequence=sequence,
                        used=row["used"],
                        limit_value=row["limit_value"],
                        unit=row["unit"],
                        access=row["access"],
                        as_of=row["as_of"],
                        payload=payload_json(alert_type, row, threshold),
                        status=status,
                    )
                )
        if created:
            con.executemany(
                """INSERT INTO ops.budget_alerts (alert_id, alert_type, budget_key, customer_id, period_start,
                       period_end, threshold_percent, sequence, used, limit_value, unit, access, as_of, payload,
                       created_at, creation_order, status, attempts)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)""",
                [
                    [
                        a.alert_id,
                        a.alert_type,
                        a.budget_key,
                        a.customer_id,
                        a.period_start,
                        a.period_end,
                        a.threshold_percent,
                        a.sequence,
                        a.used,
                        a.limit_value,
                        a.unit,
                        a.access,
                        a.as_of,
                        a.payload,
                        evaluated_at,
                        order + i,
                        a.status,
                    ]
                    for i, a in enumerate(created, start=1)
                ],
            )
        con.commit()
    except BaseException:
        con.rollback()
        raise
    return created

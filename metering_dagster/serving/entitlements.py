"""What the entitlements API answers: may a customer use the service now, read from the analysts' copy.

The answer comes from `marts.fct_entitlements` (one row per contract customer) and the current period's rows of
`marts.fct_budget_status`, in `analytics.duckdb`, which every completed run replaces by a rename
(serving/publish.py). So the API never opens the warehouse: a running pipeline never holds it up, and it never
holds up a run.

The file is opened read-only once per published version (`PublishedMarts`) and each request reads through its own
cursor. It is attached to a private in-memory database rather than opened by path: DuckDB hands a second
connection to a path already open in the process the database it already has, which after a publication is the
replaced file, so a server under steady load would keep answering from it.

Staleness is decided when asked: data older than the contract's `max_staleness` is stale, and access then follows
its `fail_mode` (open allows, closed blocks) rather than the data's answer.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import duckdb

from metering_dagster.settings import duckdb_config

ACCESS = ("allow", "block")
FAIL_OPEN_ACCESS = {"open": "allow", "closed": "block"}
_CATALOG = "published"  # the name the analysts' copy is attached under
_REQUIRED_TABLES = ("fct_entitlements", "fct_budget_status")


class NotPublished(Exception):
    """Nothing the API can answer from: no analysts' copy yet, or one published before budgets existed."""


@dataclass(frozen=True)
class BudgetUse:
    """One budget of a customer in its current period (a row of fct_budget_status)."""

    key: str
    used: Decimal | None  # None: a line too large to price (past any spend budget)
    limit: Decimal
    percent: Decimal | None  # None when the limit is 0
    unit: str
    period_start: datetime
    period_end: datetime


@dataclass(frozen=True)
class Entitlement:
    customer_id: str
    access: str  # "allow" | "block": the data's answer, or the fail mode's when stale
    reasons: tuple[str, ...]
    budgets: tuple[BudgetUse, ...]
    as_of: datetime | None  # when the run looked at the raw folder; None when no run has read Stripe's time
    stale: bool


def utc_text(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a Z: `2026-11-01T00:00:00Z`."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def duration_text(seconds: int) -> str:
    """900 -> `15m`, 7200 -> `2h`, 86400 -> `1d`, 90 -> `90s`: the contract's own way of writing a duration."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


class PublishedMarts:
    """The analysts' copy at `path`, reopened when a publication replaces the file (module doc).

    Another published file (the reader copy, for the console) is read the same way under its own `catalog`, with
    the `required` (schema, table) pairs it cannot answer without. Each cursor reads `catalog` by default, so
    `marts.x` names the published table.
    """

    def __init__(
        self,
        path: Path,
        catalog: str = _CATALOG,
        required: tuple[tuple[str, str], ...] = tuple(("marts", name) for name in _REQUIRED_TABLES),
    ):
        self.path = path
        self.catalog = catalog
        self.required = required
        self._lock = threading.Lock()
        self._identity: tuple[int, ...] | None = None
        self._connection: duckdb.DuckDBPyConnection | None = None

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A connection of its own for one request (DuckDB connections are not shared between threads)."""
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            raise NotPublished(
                "nothing is published yet: the API answers once a `metering run` has completed"
            ) from None
        identity = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
        with self._lock:
            if identity != self._identity or self._connection is None:
                # The previous connection is dropped, not closed: requests still reading through its cursors
                # finish on the old file, which DuckDB releases with the last of them.
                self._connection = self._open()
                self._identity = identity
            cursor = self._connection.cursor()
        cursor.execute(f"use {self.catalog}")
        return cursor

    def _open(self) -> duckdb.DuckDBPyConnection:
        con = duckdb.connect(":memory:", config=duckdb_config())
        try:
            con.execute("set TimeZone = 'UTC'")
            con.execute(f"attach ? as {self.catalog} (read_only)", [str(self.path)])
            found = set(
                con.execute(
                    "select table_schema, table_name from information_schema.tables where table_catalog = ?",
                    [self.catalog],
                ).fetchall()
            )
        except duckdb.Error as error:
            con.close()
            raise NotPublished(f"the published data cannot be read ({type(error).__name__})") from error
        missing = [
            f"{schema}.{name}" if schema != "marts" else name
            for schema, name in self.required
            if (schema, name) not in found
        ]
        if missing:
            con.close()
            raise NotPublished(
                f"the published data has no {', '.join(missing)} yet: the API answers once a `metering run` "
                "with budgets has completed"
            )
        return con


_ENTITLEMENTS_SQL = f"""
    select customer_id, access, reasons, as_of, fail_mode, max_staleness_seconds
    from {_CATALOG}.marts.fct_entitlements
    {{where}}
    order by customer_id
"""

_BUDGETS_SQL = f"""
    select customer_id, budget_key, used, limit_value, percent, unit, period_start, period_end
    from {_CATALOG}.marts.fct_budget_status
    where is_current {{where}}
    order by customer_id, budget_key
"""


def _decide(row: tuple, budgets: tuple[BudgetUse, ...], now: datetime) -> tuple[Entitlement, str | None]:
    """The entitlement of one fct_entitlements row at `now`, and the stale reason when the data is too old."""
    customer_id, access, reasons, as_of, fail_mode, max_staleness_seconds = row
    reasons = tuple(reasons or ())
    stale_reason = None
    if as_of is None or (now - as_of).total_seconds() > max_staleness_seconds:
        fail_mode = fail_mode if fail_mode in FAIL_OPEN_ACCESS else "closed"  # an unknown mode never opens
        shown = utc_text(as_of) if as_of is not None else "unknown"
        stale_reason = (
            f"stale: data as of {shown} is older than {duration_text(max_staleness_seconds)} (fail_mode {fail_mode})"
        )
        access, reasons = FAIL_OPEN_ACCESS[fail_mode], (stale_reason,)
    entitlement = Entitlement(
        customer_id=customer_id,
        access=access,
        reasons=reasons,
        budgets=budgets,
        as_of=as_of,
        stale=stale_reason is not None,
    )
    return entitlement, stale_reason


def read_entitlements(
    con: duckdb.DuckDBPyConnection, now: datetime, customer_id: str | None = None
) -> tuple[list[Entitlement], str | None]:
    """Every customer's entitlement at `now` (or the one customer's: an exact, case-sensitive match, an empty
    list when unknown), and the stale reason when the data is too old (the same for every row of one copy)."""
    where, params = ("where customer_id = ?", [customer_id]) if customer_id is not None else ("", [])
    rows = con.execute(_ENTITLEMENTS_SQL.format(where=where), params).fetchall()
    budget_where = "and customer_id = ?" if customer_id is not None else ""
    budgets: dict[str, list[BudgetUse]] = {}
    for cid, key, used, limit, percent, unit, start, end in con.execute(
        _BUDGETS_SQL.format(where=budget_where), params
    ).fetchall():
        budgets.setdefault(cid, []).append(BudgetUse(key, used, limit, percent, unit, start, end))
    decided, stale_reason = [], None
    for row in rows:
        entitlement, reason = _decide(row, tuple(budgets.get(row[0], ())), now)
        decided.append(entitlement)
        stale_reason = stale_reason or reason
    return decided, stale_reason


def published_as_of(con: duckdb.DuckDBPyConnection, now: datetime) -> tuple[datetime | None, bool]:
    """The as_of of the published data and whether it is stale at `now` (None, True with no customer at all)."""
    row = con.execute(
        f"select as_of, max_staleness_seconds from {_CATALOG}.marts.fct_entitlements order by customer_id limit 1"
    ).fetchone()
    if row is None or row[0] is None:
        return None, True
    return row[0], (now - row[0]).total_seconds() > row[1]

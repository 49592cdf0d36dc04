"""The dead-letter table `ops.stripe_dead_letters`: ledger rows Stripe did not take within the retry budget.

A row is parked here (with the error) when its request still failed after `delivery.RetryPolicy`'s
budget, when Stripe refused it for a reason that retrying does not fix, or when Stripe looked down
(an earlier batch of the same upload exhausted its budget) so it was not tried. Parking does not
touch the ledger: the ledger row stays `pending` with the same identifier, so the ledger's totals
still count it and no new row is planned for the same usage. The regular upload leaves parked rows
alone; the `dead_letter_retry` schedule re-sends them with their original identifiers, so a row
that did reach Stripe after all is answered as a duplicate (counted as delivered), never counted
twice (within Stripe's identifier window; a row first tried longer ago is settled by Stripe's summary
instead, `identifier_window.py`). A row is resolved when its ledger row is `sent` (`delivered`), or
`replaced` by a later row of its key that carries its usage (`replaced`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb

from metering_dagster.schema import ensure_dead_letter_table

DEFAULT_MAX_AGE_SECONDS = 6 * 3600  # the asset check fails while an open row is older than this


def ensure_table(con: duckdb.DuckDBPyConnection) -> None:
    ensure_dead_letter_table(con)


def park(con: duckdb.DuckDBPyConnection, identifiers: list[str], error: str, *, retry: bool = False) -> None:
    """Park ledger rows (or, for a retry that failed again, record the new error)."""
    if not identifiers:
        return
    ensure_table(con)
    con.execute(
        """INSERT INTO ops.stripe_dead_letters (identifier, customer_id, meter, period_start, value, error,
                                                 dead_lettered_at, retries, last_retry_at)
           SELECT identifier, customer_id, meter, period_start, value, ?, now(), 0, NULL
           FROM ops.stripe_ledger WHERE identifier IN (SELECT unnest(?::VARCHAR[]))
           ON CONFLICT (identifier) DO UPDATE SET error = excluded.error, resolved_at = NULL, resolution = NULL,
               retries = ops.stripe_dead_letters.retries + CASE WHEN ? THEN 1 ELSE 0 END,
               last_retry_at = CASE WHEN ? THEN now() ELSE ops.stripe_dead_letters.last_retry_at END""",
        [error[:1000], identifiers, retry, retry],
    )


def resolve_delivered(con: duckdb.DuckDBPyConnection) -> int:
    """Close every open row whose ledger row is sent, or replaced by a later row of its key; returns how
    many were closed."""
    ensure_table(con)
    closed = con.execute(
        """UPDATE ops.stripe_dead_letters d SET resolved_at = now(),
               resolution = CASE WHEN l.status = 'sent' THEN 'delivered' ELSE 'replaced' END
           FROM ops.stripe_ledger l
           WHERE d.identifier = l.identifier AND l.status IN ('sent', 'replaced') AND d.resolved_at IS NULL
           RETURNING d.identifier"""
    ).fetchall()
    return len(closed)


def open_identifiers(con: duckdb.DuckDBPyConnection) -> set[str]:
    ensure_table(con)
    return {
        r[0] for r in con.execute("SELECT identifier FROM ops.stripe_dead_letters WHERE resolved_at IS NULL").fetchall()
    }


@dataclass(frozen=True)
class OpenLetter:
    identifier: str
    customer_id: str
    meter: str
    error: str
    dead_lettered_at: datetime
    age_seconds: int
    retries: int


def open_letters(con: duckdb.DuckDBPyConnection) -> list[OpenLetter]:
    ensure_table(con)
    rows = con.execute(
        """SELECT identifier, customer_id, meter, error, dead_lettered_at,
                  epoch(now())::BIGINT - epoch(dead_lettered_at)::BIGINT, retries
           FROM ops.stripe_dead_letters WHERE resolved_at IS NULL ORDER BY dead_lettered_at, identifier"""
    ).fetchall()
    return [OpenLetter(*r) for r in rows]

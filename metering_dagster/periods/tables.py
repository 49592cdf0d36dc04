"""The warehouse tables of period close (schema `ops`, and `stripe_view.invoice_adjustments`).

- `ops.period_invoices`: per customer × period, the state of its subscription invoice in Stripe, whether
  we hold it (watermarks) and up to which landing run its usage had been uploaded while it was open.
- `ops.invoiced_lines`: per customer × meter × period, what the finalized invoice billed (frozen).
- `ops.stripe_adjustments`: the outbox of late-usage adjustments (one Stripe invoice item each).
- `ops.period_reconciliation`: the post-finalization reconciliation result per customer × period.
"""

from __future__ import annotations

import duckdb

FINALIZED = ("open", "paid", "uncollectible", "void")

DDL = [
    "CREATE SCHEMA IF NOT EXISTS ops",
    "CREATE SCHEMA IF NOT EXISTS stripe_view",
    """CREATE TABLE IF NOT EXISTS ops.period_invoices (
        customer_id VARCHAR NOT NULL,
        period_start TIMESTAMPTZ NOT NULL,
        period_end TIMESTAMPTZ NOT NULL,
        stripe_invoice_id VARCHAR NOT NULL,
        status VARCHAR NOT NULL,
        auto_advance BOOLEAN,
        finalizes_at TIMESTAMPTZ,
        finalized BOOLEAN NOT NULL,
        held_at TIMESTAMPTZ,
        hold_reason VARCHAR,
        released_at TIMESTAMPTZ,
        uploaded_through_run BIGINT,
        synced_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (customer_id, period_start))""",
    """CREATE TABLE IF NOT EXISTS ops.invoiced_lines (
        customer_id VARCHAR NOT NULL,
        meter VARCHAR NOT NULL,
        period_start TIMESTAMPTZ NOT NULL,
        period_end TIMESTAMPTZ NOT NULL,
        stripe_invoice_id VARCHAR NOT NULL,
        quantity DECIMAL(38, 12) NOT NULL,
        amount_cents BIGINT NOT NULL,
        recorded_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (customer_id, meter, period_start))""",
    """CREATE TABLE IF NOT EXISTS ops.stripe_adjustments (
        identifier VARCHAR PRIMARY KEY,
        customer_id VARCHAR NOT NULL,
        meter VARCHAR NOT NULL,
        period_start TIMESTAMPTZ NOT NULL,
        period_end TIMESTAMPTZ NOT NULL,
        seq INTEGER NOT NULL,
        quantity_before DECIMAL(38, 12) NOT NULL,
        quantity_after DECIMAL(38, 12) NOT NULL,
        amount_before_cents BIGINT NOT NULL,
        amount_after_cents BIGINT NOT NULL,
        amount_cents BIGINT NOT NULL,
        through_landing_run BIGINT,
        late_event_count BIGINT NOT NULL,
        late_event_ids VARCHAR,
        events_csv VARCHAR,
        status VARCHAR NOT NULL,          -- pending | sent | no_charge
        stripe_invoice_item_id VARCHAR,
        last_error VARCHAR,
        created_at TIMESTAMPTZ NOT NULL,
        sent_at TIMESTAMPTZ,
        UNIQUE (customer_id, meter, period_start, seq))""",
    """CREATE TABLE IF NOT EXISTS ops.period_reconciliation (
        customer_id VARCHAR NOT NULL,
        period_start TIMESTAMPTZ NOT NULL,
        result VARCHAR NOT NULL,          -- match | difference
        lines BIGINT NOT NULL,
        differences BIGINT NOT NULL,
        detail VARCHAR,
        checked_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (customer_id, period_start))""",
    """CREATE TABLE IF NOT EXISTS stripe_view.invoice_adjustments (
        customer_id VARCHAR NOT NULL,
        meter VARCHAR NOT NULL,
        period_start TIMESTAMPTZ NOT NULL,
        adjustment_id VARCHAR NOT NULL,
        seq INTEGER NOT NULL,
        stripe_invoice_item_id VARCHAR NOT NULL,
        stripe_invoice_id VARCHAR,
        amount_cents BIGINT NOT NULL,
        quantity_after DECIMAL(38, 12),
        snapshot_at TIMESTAMPTZ NOT NULL)""",
]


def ensure_period_tables(con: duckdb.DuckDBPyConnection) -> None:
    for statement in DDL:
        con.execute(statement)


def finalized_periods_sql() -> str:
    """(customer_id, period_start) of every period whose invoice Stripe has finalized."""
    return "SELECT customer_id, period_start FROM ops.period_invoices WHERE finalized"


def is_finalized_sql(alias: str) -> str:
    """A SQL predicate: the row `alias` (customer_id, period_start) belongs to a finalized period."""
    return (
        "EXISTS (SELECT 1 FROM ops.period_invoices p WHERE p.finalized "
        f"AND p.customer_id = {alias}.customer_id AND p.period_start = {alias}.period_start)"
    )


ADJUSTMENT_KEY = "metering_adjustment_id"  # metadata of an adjustment invoice item (and of its invoice line)

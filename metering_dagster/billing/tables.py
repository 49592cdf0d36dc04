"""The warehouse tables that billing writes (schemas `ops` and `stripe_view`).

`ops.*` is billing's own state: which Stripe object stands for which contract object, and
the outbox of meter events. `stripe_view.*` is a snapshot of what Stripe holds, read by
dbt's `rpt_reconciliation` (docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import duckdb

DDL = [
    "CREATE SCHEMA IF NOT EXISTS ops",
    "CREATE SCHEMA IF NOT EXISTS stripe_view",
    # the shared test clock of `environment: test`
    """CREATE TABLE IF NOT EXISTS ops.stripe_test_clocks (
        test_clock_id VARCHAR PRIMARY KEY,
        name VARCHAR NOT NULL,
        frozen_time TIMESTAMPTZ,
        synced_at TIMESTAMPTZ NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS ops.stripe_meters (
        meter VARCHAR PRIMARY KEY,
        stripe_meter_id VARCHAR NOT NULL,
        event_name VARCHAR NOT NULL,
        stripe_formula VARCHAR NOT NULL,
        stripe_product_id VARCHAR NOT NULL,
        synced_at TIMESTAMPTZ NOT NULL)""",
    # every price we ever used, so old invoice lines still map back to their meter
    """CREATE TABLE IF NOT EXISTS ops.stripe_prices (
        stripe_price_id VARCHAR PRIMARY KEY,
        meter VARCHAR NOT NULL,
        lookup_key VARCHAR NOT NULL,
        price_fingerprint VARCHAR NOT NULL,
        is_current BOOLEAN NOT NULL,
        synced_at TIMESTAMPTZ NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS ops.stripe_customers (
        customer_id VARCHAR PRIMARY KEY,
        stripe_customer_id VARCHAR NOT NULL,
        stripe_test_clock_id VARCHAR,
        stripe_subscription_id VARCHAR,
        billing_anchor TIMESTAMPTZ NOT NULL,
        synced_at TIMESTAMPTZ NOT NULL)""",
    # each subscription's billing periods as Stripe last showed them, and where they leave the contract's
    """CREATE TABLE IF NOT EXISTS ops.stripe_subscription_periods (
        customer_id VARCHAR PRIMARY KEY,
        stripe_subscription_id VARCHAR NOT NULL,
        billing_cycle_anchor TIMESTAMPTZ NOT NULL,
        current_period_start TIMESTAMPTZ,
        current_period_end TIMESTAMPTZ,
        billing_day_of_month INTEGER NOT NULL,
        problem VARCHAR,
        checked_at TIMESTAMPTZ NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS ops.stripe_subscription_items (
        customer_id VARCHAR NOT NULL,
        meter VARCHAR NOT NULL,
        stripe_subscription_item_id VARCHAR NOT NULL,
        stripe_price_id VARCHAR NOT NULL,
        synced_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (customer_id, meter))""",
    # the outbox: one row per meter event, written (pending) before it is sent
    """CREATE TABLE IF NOT EXISTS ops.stripe_ledger (
        identifier VARCHAR PRIMARY KEY,
        customer_id VARCHAR NOT NULL,
        meter VARCHAR NOT NULL,
        period_start TIMESTAMPTZ NOT NULL,
        period_end TIMESTAMPTZ NOT NULL,
        seq INTEGER NOT NULL,
        stripe_formula VARCHAR NOT NULL,
        value DECIMAL(38, 12) NOT NULL,
        quantity_after DECIMAL(38, 12) NOT NULL,
        event_timestamp TIMESTAMPTZ NOT NULL,
        status VARCHAR NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error VARCHAR,
        last_error_at TIMESTAMPTZ,
        created_at TIMESTAMPTZ NOT NULL,
        sent_at TIMESTAMPTZ,
        UNIQUE (customer_id, meter, period_start, seq))""",
    # per customer: when its Stripe view was last read, and Stripe's time then (billing/snapshot.py)
    """CREATE TABLE IF NOT EXISTS ops.stripe_snapshot_state (
        customer_id VARCHAR PRIMARY KEY,
        snapshot_at TIMESTAMPTZ NOT NULL,
        stripe_now TIMESTAMPTZ NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS stripe_view.usage_summaries (
        customer_id VARCHAR NOT NULL,
        meter VARCHAR NOT NULL,
        period_start TIMESTAMPTZ NOT NULL,
        period_end TIMESTAMPTZ NOT NULL,
        stripe_quantity DECIMAL(38, 12),
        snapshot_at TIMESTAMPTZ NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS stripe_view.invoice_lines (
        customer_id VARCHAR NOT NULL,
        meter VARCHAR,
        period_start TIMESTAMPTZ,
        period_end TIMESTAMPTZ,
        stripe_invoice_id VARCHAR,
        invoice_status VARCHAR NOT NULL,
        quantity DECIMAL(38, 12),
        amount_cents BIGINT NOT NULL,
        currency VARCHAR NOT NULL,
        snapshot_at TIMESTAMPTZ NOT NULL)""",
]


def ensure_billing_tables(con: duckdb.DuckDBPyConnection) -> None:
    for statement in DDL:
        con.execute(statement)

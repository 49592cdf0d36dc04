"""Every table the product writes in the warehouse, and the migrations of warehouses created before a column was.

One module owns the DDL, so a newcomer reads the warehouse's shape in one place (docs/ARCHITECTURE.md, "Warehouse",
lists each table with its writer). Each `ensure_*` is idempotent: `CREATE ... IF NOT EXISTS`, then the columns added
since the first release. The writers call the one for their tables before they write; dbt only reads them.

- source tables (schemas `raw`, `contract`, `stripe_view`): landing, the contract and the Stripe snapshot fill them;
  created empty with the connection, so dbt can build before anything has been landed;
- billing (`ops.stripe_*`, `stripe_view.*`): which Stripe object stands for which contract object, the outbox of
  meter events (the ledger, its incarnation and meters), Stripe's error reports, the customers Stripe refuses or
  could not be read, the dead letters, the snapshot of what Stripe holds;
- period close (`ops.period_invoices`, `ops.invoiced_lines`, `ops.stripe_adjustments`, `ops.period_reconciliation`,
  `stripe_view.invoice_adjustments`);
- the upload lease (`ops.upload_lease`, locks.py) and the contract dbt last built with (`ops.dbt_contract_built`).
"""

from __future__ import annotations

import duckdb

SCHEMAS = ("raw", "contract", "stripe_view", "ops")
OPS_SCHEMA = "CREATE SCHEMA IF NOT EXISTS ops"

SOURCE_TABLES_DDL = """
create table if not exists raw.landed_files (
    source_file varchar not null,
    content_sha256 varchar not null,
    size_bytes bigint not null,
    line_count bigint not null,
    landing_run_id bigint not null,
    landed_at timestamptz not null,
    lines_blank bigint not null default 0,
    file_mtime_ns bigint  -- the file's modification time when landed (NULL: landed before it was recorded)
);
create table if not exists raw.usage_lines (
    landing_run_id bigint not null,
    landed_at timestamptz not null,
    source_file varchar not null,
    line_number bigint not null,
    -- The two long texts are zstd-compressed: DuckDB's default analysis (FSST, dictionary) of a
    -- column of distinct JSON lines cost more than a third of landing, for a file 60% larger.
    raw_line varchar using compression zstd not null,
    -- parsed once at landing; numbers keep their exact text (see landing/parse.py)
    is_json_object boolean not null,
    payload json using compression zstd,
    event_id_type varchar,
    event_id varchar,
    timestamp_type varchar,
    timestamp_text varchar,
    customer_id_type varchar,
    customer_id varchar,
    action_type varchar,
    action varchar,
    environment_type varchar,
    environment varchar,
    -- why the line cannot be an event before any parsing (landing/land.py), NULL when it can
    landing_problem varchar
);
create table if not exists contract.settings (
    environment varchar,
    currency varchar,
    grace_period_seconds bigint,
    test_clock_start timestamptz,
    contract_fingerprint varchar
);
create table if not exists contract.meters (
    meter varchar,
    display_name varchar,
    action varchar,
    value_path varchar,
    aggregation varchar,
    unit varchar,
    stripe_formula varchar,
    price_model varchar,
    unit_amount_decimal decimal(38, 12),
    package_size decimal(38, 12),
    package_round varchar,
    currency varchar,
    price_fingerprint varchar
);
create table if not exists contract.meter_filters (
    meter varchar,
    field_path varchar,
    allowed_value varchar
);
create table if not exists contract.price_tiers (
    meter varchar,
    tier_index integer,
    up_to decimal(38, 12),
    unit_amount_decimal decimal(38, 12),
    flat_amount_decimal decimal(38, 12)
);
create table if not exists contract.customers (
    customer_id varchar,
    billing_anchor timestamptz,
    billing_interval varchar
);
-- budgets: contract.budgets (customer_id '*' = every customer without its own budget under the key)
create table if not exists contract.budgets (
    budget_key varchar,
    customer_id varchar,
    budget_kind varchar,
    meter varchar,
    limit_value decimal(38, 12),
    on_exceed varchar
);
create table if not exists contract.budget_thresholds (
    budget_key varchar,
    customer_id varchar,
    threshold_percent integer
);
-- Stripe's time as each run saw it, with the wall-clock time the run looked at the raw folder (the data's as of)
create table if not exists ops.stripe_clock_readings (
    read_at timestamptz not null,
    stripe_now timestamptz not null
);
create table if not exists stripe_view.usage_summaries (
    customer_id varchar,
    meter varchar,
    period_start timestamptz,
    period_end timestamptz,
    stripe_quantity decimal(38, 12),
    snapshot_at timestamptz
);
create table if not exists stripe_view.invoice_lines (
    customer_id varchar,
    meter varchar,
    period_start timestamptz,
    period_end timestamptz,
    stripe_invoice_id varchar,
    invoice_status varchar,
    quantity decimal(38, 12),
    amount_cents bigint,
    currency varchar,
    snapshot_at timestamptz
);
"""


# Columns added to the source tables after the first release: warehouses created before get them here.
SOURCE_MIGRATIONS = (
    "alter table raw.usage_lines add column if not exists landing_problem varchar",
    "alter table raw.landed_files add column if not exists lines_blank bigint default 0",
    "alter table raw.landed_files add column if not exists file_mtime_ns bigint",
    "alter table contract.settings add column if not exists entitlement_fail_mode varchar",
    "alter table contract.settings add column if not exists entitlement_max_staleness_seconds bigint",
)

BILLING_DDL = [
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


PERIOD_DDL = [
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


LEASE_DDL = """CREATE TABLE IF NOT EXISTS ops.upload_lease (
    name VARCHAR PRIMARY KEY, holder VARCHAR NOT NULL, pid BIGINT NOT NULL, host VARCHAR NOT NULL,
    acquired_at TIMESTAMPTZ NOT NULL)"""


# Columns added to ops.stripe_ledger after its first release (an existing ledger gets them on its next run).
LEDGER_ADDED_COLUMNS = {
    # 'event' (sent to Stripe), 'baseline' (what Stripe already held when this ledger met the key) or
    # 'summary' (what Stripe held of rows not trusted after the identifier window); the last two are never sent
    "kind": "VARCHAR DEFAULT 'event'",
    "sent_to": "VARCHAR",  # the Stripe customer the row was delivered to
    "rejected_code": "VARCHAR",  # Stripe's code while Stripe refuses the row (cleared once it is accepted)
    "confirmed_at": "TIMESTAMPTZ",  # no rejection reported within error_reports.CONFIRM_AFTER_SECONDS
    "first_sent_at": "TIMESTAMPTZ",  # our time when the row was first tried (set before the request)
    "first_sent_stripe_at": "TIMESTAMPTZ",  # Stripe's time then, on the customer's clock
}
# A ledger older than `first_sent_at` may have tried any event row since it was written.
LEDGER_BACKFILL = {"first_sent_at": "UPDATE ops.stripe_ledger SET first_sent_at = created_at WHERE kind = 'event'"}
LEDGER_DDL = [
    """CREATE TABLE IF NOT EXISTS ops.stripe_ledger_incarnation (
        incarnation_id VARCHAR PRIMARY KEY,
        created_at TIMESTAMPTZ NOT NULL)""",
    # per meter, once per incarnation: may an earlier ledger have sent usage to it (baseline.py)?
    """CREATE TABLE IF NOT EXISTS ops.stripe_ledger_meters (
        meter VARCHAR NOT NULL,
        stripe_meter_id VARCHAR NOT NULL,
        incarnation_id VARCHAR NOT NULL,
        claimed_at TIMESTAMPTZ NOT NULL,
        baseline_before TIMESTAMPTZ,     -- NULL: no earlier ledger; else keys of periods starting before it
        earlier_ledger VARCHAR,          -- why an earlier ledger may have sent usage
        stamped BOOLEAN NOT NULL,        -- Stripe knows this ledger owns the meter now
        PRIMARY KEY (meter, stripe_meter_id, incarnation_id))""",
]

ERROR_REPORT_DDL = [
    """CREATE TABLE IF NOT EXISTS ops.stripe_error_reports (
        event_id VARCHAR PRIMARY KEY,
        event_type VARCHAR NOT NULL,
        stripe_meter_id VARCHAR,
        created TIMESTAMPTZ NOT NULL,      -- Stripe's time
        error_count BIGINT NOT NULL,
        rows_rejected BIGINT NOT NULL,     -- ledger rows it sent back to pending
        rows_delivered BIGINT NOT NULL,    -- ledger rows it showed Stripe had (duplicates)
        summary VARCHAR,
        read_at TIMESTAMPTZ NOT NULL)""",
    # customers whose events Stripe refuses (their Stripe customer is gone): nothing is sent for them meanwhile
    """CREATE TABLE IF NOT EXISTS ops.stripe_rejected_customers (
        customer_id VARCHAR PRIMARY KEY,
        stripe_customer_id VARCHAR,
        code VARCHAR NOT NULL,
        message VARCHAR NOT NULL,
        rejected_at TIMESTAMPTZ NOT NULL,
        checked_at TIMESTAMPTZ NOT NULL)""",
]

CUSTOMER_PROBLEMS_DDL = """CREATE TABLE IF NOT EXISTS ops.stripe_customer_problems (
    customer_id VARCHAR NOT NULL,
    step VARCHAR NOT NULL,
    problem VARCHAR NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL)"""

DEAD_LETTER_DDL = """CREATE TABLE IF NOT EXISTS ops.stripe_dead_letters (
    identifier VARCHAR PRIMARY KEY,       -- ops.stripe_ledger.identifier
    customer_id VARCHAR NOT NULL,
    meter VARCHAR NOT NULL,
    period_start TIMESTAMPTZ NOT NULL,
    value DECIMAL(38, 12) NOT NULL,
    error VARCHAR NOT NULL,               -- the last error (never a key: Stripe errors do not carry it)
    dead_lettered_at TIMESTAMPTZ NOT NULL, -- first parked
    retries INTEGER NOT NULL DEFAULT 0,    -- re-sends by the dead-letter retry
    last_retry_at TIMESTAMPTZ,
    resolved_at TIMESTAMPTZ,               -- NULL while open
    resolution VARCHAR)"""

# the contract the incremental models were last built with (transform/rebuild.py)
CONTRACT_BUILT_DDL = """
create schema if not exists ops;
create table if not exists ops.dbt_contract_built (fingerprint varchar not null, built_at timestamptz not null)
"""


def ensure_source_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create the schemas and the (empty) Python-written source tables if missing, with period close's tables
    (among them the dbt source stripe_view.invoice_adjustments)."""
    for schema in SCHEMAS:
        con.execute(f"create schema if not exists {schema}")
    con.execute(SOURCE_TABLES_DDL)
    for statement in SOURCE_MIGRATIONS:
        con.execute(statement)
    ensure_period_tables(con)
    ensure_stripe_alert_tables(con)
    ensure_budget_alert_tables(con)


def _execute(con: duckdb.DuckDBPyConnection, *statements: str) -> None:
    for statement in statements:
        con.execute(statement)


def ensure_billing_tables(con: duckdb.DuckDBPyConnection) -> None:
    _execute(con, *BILLING_DDL)


def ensure_period_tables(con: duckdb.DuckDBPyConnection) -> None:
    _execute(con, *PERIOD_DDL)


def ensure_lease_table(con: duckdb.DuckDBPyConnection) -> None:
    _execute(con, OPS_SCHEMA, LEASE_DDL)


def ensure_ledger_tables(con: duckdb.DuckDBPyConnection) -> None:
    """The outbox and what it reads (billing and period tables), with the columns added since its first release."""
    ensure_billing_tables(con)
    ensure_period_tables(con)
    present = {
        r[0]
        for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'ops' AND table_name = 'stripe_ledger'"
        ).fetchall()
    }
    for name, kind in LEDGER_ADDED_COLUMNS.items():
        if name not in present:
            con.execute(f"ALTER TABLE ops.stripe_ledger ADD COLUMN IF NOT EXISTS {name} {kind}")
            if name in LEDGER_BACKFILL:
                con.execute(LEDGER_BACKFILL[name])
    _execute(con, *LEDGER_DDL)


def ensure_error_report_tables(con: duckdb.DuckDBPyConnection) -> None:
    _execute(con, *ERROR_REPORT_DDL)


def ensure_customer_problems_table(con: duckdb.DuckDBPyConnection) -> None:
    _execute(con, OPS_SCHEMA, CUSTOMER_PROBLEMS_DDL)


def ensure_dead_letter_table(con: duckdb.DuckDBPyConnection) -> None:
    _execute(con, OPS_SCHEMA, DEAD_LETTER_DDL)


def ensure_contract_built_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(CONTRACT_BUILT_DDL)


# Stripe billing alerts (billing/alerts.py): the alert that stands for each quantity budget, and the ones Stripe triggered.
STRIPE_ALERT_DDL = [
    "CREATE SCHEMA IF NOT EXISTS stripe_view",
    """CREATE TABLE IF NOT EXISTS ops.stripe_billing_alerts (
        budget_key VARCHAR NOT NULL,
        customer_id VARCHAR NOT NULL,          -- ours
        stripe_alert_id VARCHAR PRIMARY KEY,
        stripe_meter_id VARCHAR NOT NULL,
        gte BIGINT NOT NULL,                   -- the budget's limit, a whole number of the meter's units
        status VARCHAR NOT NULL,               -- active | archived (the budget changed or went away)
        synced_at TIMESTAMPTZ NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS stripe_view.billing_alerts_triggered (
        stripe_alert_id VARCHAR NOT NULL,
        stripe_event_id VARCHAR PRIMARY KEY,   -- each billing.alert.triggered event stored once
        customer_id VARCHAR NOT NULL,          -- ours
        budget_key VARCHAR NOT NULL,
        meter VARCHAR NOT NULL,
        value DECIMAL(38, 12) NOT NULL,        -- the usage that reached the threshold
        triggered_at TIMESTAMPTZ NOT NULL,     -- Stripe's time (the test clock's in test mode)
        period_start TIMESTAMPTZ NOT NULL,     -- the customer's billing period containing triggered_at
        snapshot_at TIMESTAMPTZ NOT NULL)""",
]


def ensure_stripe_alert_tables(con: duckdb.DuckDBPyConnection) -> None:
    _execute(con, OPS_SCHEMA, *STRIPE_ALERT_DDL)


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


# Budget alerts (budgets/evaluate.py, budgets/webhooks.py): the outbox of alerts and the ones a run could not deliver.
BUDGET_ALERT_DDL = [
    """CREATE TABLE IF NOT EXISTS ops.budget_alerts (
        alert_id VARCHAR PRIMARY KEY,          -- the webhook-id: msg_ + a hash of the key columns and sequence
        alert_type VARCHAR NOT NULL,           -- budget.threshold_reached | budget.threshold_cleared
        budget_key VARCHAR NOT NULL,
        customer_id VARCHAR NOT NULL,
        period_start TIMESTAMPTZ NOT NULL,
        period_end TIMESTAMPTZ NOT NULL,
        threshold_percent INTEGER NOT NULL,
        sequence INTEGER NOT NULL,             -- 1 first reached, 2 its clear, 3 reached again ...
        used DECIMAL(38, 12),                  -- NULL: a line too large to price (past any spend budget)
        limit_value DECIMAL(38, 12) NOT NULL,
        unit VARCHAR NOT NULL,
        access VARCHAR NOT NULL,               -- allow | block
        as_of TIMESTAMPTZ,
        payload VARCHAR NOT NULL,              -- the exact JSON body, fixed at creation: every attempt sends it
        created_at TIMESTAMPTZ NOT NULL,
        creation_order BIGINT NOT NULL,        -- delivery order: one evaluation creates 80 before 100
        status VARCHAR NOT NULL,               -- pending | delivered | recorded (no webhook URL set)
        attempts INTEGER NOT NULL DEFAULT 0,
        last_attempt_at TIMESTAMPTZ,           -- recorded before each attempt is sent
        next_attempt_at TIMESTAMPTZ,
        delivered_at TIMESTAMPTZ,
        last_error VARCHAR,
        UNIQUE (budget_key, customer_id, period_start, threshold_percent, sequence))""",
    """CREATE TABLE IF NOT EXISTS ops.budget_alert_dead_letters (
        alert_id VARCHAR PRIMARY KEY,          -- ops.budget_alerts.alert_id, still pending: the next run retries it
        failed_at TIMESTAMPTZ NOT NULL,        -- when a run last gave up on it
        attempts INTEGER NOT NULL,             -- attempts so far, all runs
        last_error VARCHAR NOT NULL)""",
]


def ensure_budget_alert_tables(con: duckdb.DuckDBPyConnection) -> None:
    _execute(con, OPS_SCHEMA, *BUDGET_ALERT_DDL)


# the metering job's runs and what each built from: a run with nothing new since one that completed skips its work
# (transform/freshness.py)
METERING_RUNS_DDL = """CREATE TABLE IF NOT EXISTS ops.metering_runs (
    run_number BIGINT PRIMARY KEY,
    dagster_run_id VARCHAR NOT NULL,
    started_at TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ,                   -- NULL: failed or killed (or still under way)
    landed VARCHAR NOT NULL,                   -- raw.landed_files as the run's dbt step read it
    contract_sha256 VARCHAR NOT NULL,          -- the contract file's bytes
    dbt_project_sha256 VARCHAR NOT NULL,       -- the engine and the dbt project's files (engine:sha256)
    stripe_now TIMESTAMPTZ,
    period_invoices VARCHAR)                   -- the invoices' state when the run finished (billing/changes.py)"""


def ensure_run_tables(con: duckdb.DuckDBPyConnection) -> None:
    _execute(con, OPS_SCHEMA, METERING_RUNS_DDL)

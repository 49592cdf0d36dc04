"""`metering demo`: the whole story on the shipped data, through the same commands a user has.

1. Reset the demo state (warehouse, emulator, analysts' copy), or refuse (below).
2. Move the Stripe test clock to 00:30 on 1 November: October has ended, its invoice is a
   draft inside the one-hour grace period.
3. `metering run`: land October's logs, validate, dedupe, aggregate, gate, report to Stripe.
4. Move the clock to 02:00: the grace period is over, Stripe finalizes the invoice.
5. `metering run` again: nothing new is sent; Stripe's final invoice is reconciled against ours.
6. Early November usage arrives (`data/demo/later/`): `metering run` finds one customer past 80% of its spend
   budget and another past its API call cap (a `block` budget); the demo prints the alerts and what the
   entitlements API (`metering serve`) answers for that customer.

The demo cannot hurt a real setup. It always uses the shipped contract and usage logs (`data/demo/`, the logs copied into
the state folder's `raw/` as the story makes them arrive) and the bundled Stripe emulator, and refuses, deleting nothing, when `STRIPE_API_KEY` or `STRIPE_API_BASE`
is set. It writes a marker file into the state folder before anything else and resets only a folder
that carries it (or an empty one); even then it refuses when the warehouse names a Stripe object the
bundled emulator in that folder never created: that warehouse has talked to another Stripe, and its
ledger is what stops that Stripe from being billed twice; or when it holds usage from files other than
the shipped logs (the folder was used for other data).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from metering_dagster.commands.clock import advance_clock
from metering_dagster.commands.run import run_once
from metering_dagster.contract import load_contract
from metering_dagster.display import money, quantity
from metering_dagster.locks import LOCK_FILE, run_lock
from metering_dagster.serving.api.entitlement_routes import entitlement_json
from metering_dagster.serving.entitlements import PublishedMarts, read_entitlements
from metering_dagster.settings import (
    DEMO_DIR,
    REPO_ROOT,
    Settings,
    export_environment,
    stripe_variables_set,
)
from metering_dagster.warehouse import utc_date

IN_GRACE = datetime(2026, 11, 1, 0, 30, tzinfo=UTC)
AFTER_GRACE = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)

DEMO_CONTRACT = DEMO_DIR / "metering.yml"
DEMO_RAW_DIR = DEMO_DIR / "raw"
# Usage that arrives after October is closed: the start of November, which crosses the demo's budgets.
DEMO_LATER_DIR = DEMO_DIR / "later"
BLOCKED_CUSTOMER = "cus_globex"
MARKER = ".metering-demo"
MARKER_TEXT = (
    "This folder is the state of `metering demo`: a next `metering demo` deletes the files below it that\n"
    "the pipeline writes (warehouse, analysts' and reader copies, emulator state, logs), never\n"
    "dagster_home. Remove this file to keep the demo from touching the folder.\n"
)
# What the demo's runs write in the state folder: a marked folder loses these and nothing else (the run
# lock file stays: another command may hold it).
DEMO_FILES = (
    "warehouse.duckdb",
    "warehouse.duckdb.wal",
    "warehouse.duckdb.tmp",
    "analytics.duckdb",
    "analytics.duckdb.wal",
    "analytics.duckdb.tmp",
    "reader.duckdb",
    "reader.duckdb.wal",
    "reader.duckdb.tmp",
    "stripe_emulator.sqlite",
    "stripe_emulator.sqlite-wal",
    "stripe_emulator.sqlite-shm",
    "stripe_emulator.sqlite-journal",
    "logs",
    "dbt_target",
    "dbt_docs",
    "target",
    "explain",
    "adjustments",
    "raw",
)
_SHOWN = 8  # names listed in a refusal before "and N more"


class DemoRefused(Exception):
    """The demo will not run here; nothing was deleted. The message says why and what to do."""


def _names(paths: list[str]) -> str:
    shown = ", ".join(paths[:_SHOWN])
    return shown + (f" and {len(paths) - _SHOWN} more" if len(paths) > _SHOWN else "")


def refuse_stripe_variables(environ: Mapping[str, str] | None = None) -> None:
    """The demo talks only to the bundled emulator: a configured Stripe is a sign of a real setup."""
    present = stripe_variables_set(environ)
    if present:
        unset = " ".join(f"-u {name}" for name in present)
        raise DemoRefused(
            f"{' and '.join(present)} {'is' if len(present) == 1 else 'are'} set; the demo talks only to the bundled "
            f"Stripe emulator, never to a Stripe account. Nothing was deleted. Run it without: env {unset} make demo"
        )


def _foreign_contents(state_dir: Path) -> tuple[list[str], list[str]]:
    """What in the warehouse is not the demo's: (1) Stripe ids it records (ledger deliveries, customers,
    meters) that the bundled emulator whose state is in `state_dir` never created, proof that it talked to
    another Stripe; (2) landed files that are not the shipped demo logs (by content), proof of other usage."""
    warehouse = state_dir / "warehouse.duckdb"
    if not warehouse.exists():
        return [], []
    try:
        con = duckdb.connect(str(warehouse), read_only=True)
    except duckdb.Error as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DemoRefused(
            f"cannot read {warehouse} to check that its Stripe ledger is the demo's ({first_line}). Nothing was "
            "deleted. Close what holds it and try again."
        ) from None
    try:
        present = {
            (schema, table, column)
            for schema, table, column in con.execute(
                "select table_schema, table_name, column_name from information_schema.columns where table_schema = 'ops'"
            ).fetchall()
        }
        queries = [
            ("ops", "stripe_ledger", "sent_to"),
            ("ops", "stripe_customers", "stripe_customer_id"),
            ("ops", "stripe_meters", "stripe_meter_id"),
        ]
        recorded: set[str] = set()
        for schema, table, column in queries:
            if (schema, table, column) in present:
                rows = con.execute(
                    f"select distinct {column} from {schema}.{table} where {column} is not null"
                ).fetchall()
                recorded.update(row[0] for row in rows)
        landed = []
        if con.execute(
            "select count(*) from information_schema.tables where table_schema = 'raw' and table_name = 'landed_files'"
        ).fetchone()[0]:
            landed = con.execute("select source_file, content_sha256 from raw.landed_files order by 1").fetchall()
    finally:
        con.close()
    shipped = {
        hashlib.sha256(p.read_bytes()).hexdigest()
        for folder in (DEMO_RAW_DIR, DEMO_LATER_DIR)
        for p in folder.rglob("*")
        if p.is_file()
    }
    other_usage = [name for name, sha in landed if sha not in shipped]
    if not recorded:
        return [], other_usage
    emulator = state_dir / "stripe_emulator.sqlite"
    known: set[str] = set()
    if emulator.exists():
        lite = sqlite3.connect(f"{emulator.as_uri()}?mode=ro", uri=True)
        try:
            known = {row[0] for row in lite.execute("select id from objects")}
        except sqlite3.Error:
            known = set()
        finally:
            lite.close()
    return sorted(recorded - known), other_usage


def _entries(state_dir: Path, dagster_home: Path) -> list[Path]:
    """The state folder's entries, but Dagster's run history (the demo keeps it) and an idle run lock (empty:
    any command that waits for runs leaves one, e.g. `metering explain` before a first run)."""
    home = dagster_home.resolve()
    return sorted(
        p
        for p in state_dir.iterdir()
        if p.resolve() != home and not (p.name == LOCK_FILE and p.is_file() and p.stat().st_size == 0)
    )


def prepare_state(settings: Settings) -> list[str]:
    """Make `settings.state_dir` the demo's and empty of the demo's earlier state; return what was deleted.

    Raises `DemoRefused`, having deleted nothing, when the folder is not the demo's (module doc).
    """
    state_dir = settings.state_dir
    marker = state_dir / MARKER
    if state_dir.exists() and not state_dir.is_dir():
        raise DemoRefused(
            f"{state_dir} is a file, not a folder. Nothing was deleted. Set METERING_STATE_DIR to a folder."
        )
    entries = _entries(state_dir, settings.dagster_home) if state_dir.exists() else []
    if entries and not marker.exists():
        names = [p.name + ("/" if p.is_dir() else "") for p in entries]
        raise DemoRefused(
            f"{state_dir} is not a demo's state folder (it has no {MARKER}) and is not empty: the demo would delete "
            f"{_names(names)}. Nothing was deleted. Run the demo in a folder of its own, e.g. "
            "METERING_STATE_DIR=/tmp/metering-demo make demo, or move these files away if they are a demo's."
        )
    foreign, other_usage = _foreign_contents(state_dir) if entries else ([], [])
    if foreign:
        raise DemoRefused(
            f"{state_dir / 'warehouse.duckdb'} has talked to a Stripe that is not the bundled emulator (it names "
            f"{_names(foreign)}, which the emulator here never created): its ledger is what stops that Stripe from "
            "being billed twice. Nothing was deleted. Run the demo in a folder of its own, e.g. "
            "METERING_STATE_DIR=/tmp/metering-demo make demo."
        )
    if other_usage:
        raise DemoRefused(
            f"{state_dir / 'warehouse.duckdb'} holds usage that is not the demo's (landed {_names(other_usage)}): "
            "the demo's folder was used for other data. Nothing was deleted. Give that data a state folder of its "
            "own, or run the demo in one: METERING_STATE_DIR=/tmp/metering-demo make demo."
        )
    state_dir.mkdir(parents=True, exist_ok=True)
    if not marker.exists():
        marker.write_text(MARKER_TEXT)  # first, before the demo writes anything
    deleted = []
    with run_lock(state_dir, wait_seconds=0):  # not under a running `metering run`
        for name in DEMO_FILES:
            path = state_dir / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()
            else:
                continue
            deleted.append(name)
    return deleted


def _step(text: str) -> None:
    print(f"\n== {text}", flush=True)


def _table(header: list[str], rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    return [line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def print_invoices(settings: Settings) -> None:
    """One table: each customer's lines, ours against Stripe's, then the total of each of its Stripe invoices
    against ours for that period (the status column gives the invoice's status and id)."""
    currency = load_contract(settings.contract_path).currency
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        lines = con.execute(
            f"""
            select customer_id, meter, {utc_date("period_start")}, local_quantity, stripe_quantity,
                   local_amount_cents, stripe_amount_cents, status
            from marts.rpt_reconciliation
            order by customer_id, period_start, meter
            """
        ).fetchall()
        invoices = con.execute(
            f"""
            select customer_id, stripe_invoice_id, invoice_status, {utc_date("min(period_start)")}, sum(amount_cents)
            from stripe_view.invoice_lines where invoice_status <> 'preview'
            group by customer_id, stripe_invoice_id, invoice_status order by 1, 4, 2
            """
        ).fetchall()
    finally:
        con.close()
    rows: list[list[str]] = []
    customers = sorted({row[0] for row in lines} | {row[0] for row in invoices})
    for customer in customers:
        for _, meter, period, ours_qty, stripe_qty, ours, theirs, status in (r for r in lines if r[0] == customer):
            rows.append(
                [
                    customer,
                    meter,
                    str(period),
                    quantity(ours_qty),
                    quantity(stripe_qty),
                    money(ours, currency),
                    money(theirs, currency),
                    status,
                ]
            )
        for _, invoice, status, period, total in (r for r in invoices if r[0] == customer):
            ours_total = sum(r[5] or 0 for r in lines if r[0] == customer and r[2] == period)
            rows.append(
                [
                    customer,
                    "invoice total",
                    str(period or "-"),
                    "",
                    "",
                    money(ours_total, currency),
                    money(total, currency),
                    f"{status}: {invoice}",
                ]
            )
    header = ["customer", "meter", "period", "our quantity", "Stripe quantity", "our amount", "Stripe amount", "status"]
    for text in _table(header, rows, right={3, 4, 5, 6}):
        print(text)


def _budget_value(value, unit: str, currency: str) -> str:
    """Spend budgets count cents: shown as money; quantity budgets in the meter's unit."""
    if value is None:
        return "too large to price"
    return money(int(value), currency) if unit == "cents" else f"{quantity(value)} {unit}"


def print_budgets(settings: Settings) -> None:
    """The alerts of the run (as sent to METERING_WEBHOOK_URL, or recorded) and the entitlements API's answer for
    the customer past its block budget, as `metering serve` gives it, from the analysts' copy it reads."""
    con = duckdb.connect(str(settings.analytics_path), read_only=True)
    try:
        alerts = con.execute(
            f"""select customer_id, budget_key, threshold_percent, alert_type, used, limit_value, unit, access,
                       delivery_state, {utc_date("period_start")}
                from marts.rpt_budget_alerts order by customer_id, budget_key, threshold_percent"""
        ).fetchall()
        stripe_alerts = con.execute(
            """select customer_id, budget_key, local_used, stripe_value, status
               from marts.rpt_stripe_budget_alerts order by customer_id, budget_key, period_start"""
        ).fetchall()
    finally:
        con.close()
    currency = load_contract(settings.contract_path).currency
    rows = []
    for customer, budget, threshold, kind, used, limit, unit, access, state, period in alerts:
        rows.append(
            [
                customer,
                budget,
                str(period),
                f"{threshold}%",
                kind.removeprefix("budget."),
                _budget_value(used, unit, currency),
                _budget_value(limit, unit, currency),
                access,
                state,
            ]
        )
    header = ["customer", "budget", "period", "threshold", "alert", "used", "limit", "access", "webhook"]
    for text in _table(header, rows, right={3, 5, 6}):
        print(text)
    agree = sum(status in ("match", "stripe_alert_spent") for *_, status in stripe_alerts)
    print(f"\nStripe's billing alerts against our 100% alerts: {agree} of {len(stripe_alerts)} agree")
    for customer, budget, ours, theirs, status in stripe_alerts:
        print(f"  {customer} {budget}: ours at {quantity(ours)}, Stripe's fired at {quantity(theirs)}: {status}")
    entitlements, _ = read_entitlements(
        PublishedMarts(settings.analytics_path).cursor(), datetime.now(UTC), BLOCKED_CUSTOMER
    )
    print(f"\nGET /v1/entitlements/{BLOCKED_CUSTOMER} (metering serve) ->")
    print(json.dumps(entitlement_json(entitlements[0]), indent=2))


def run_demo(settings: Settings) -> int:
    """The demo story, through the commands' own functions (`metering clock advance`, `metering run`);
    `DemoRefused` (nothing deleted) when the environment or the state folder is not the demo's."""
    refuse_stripe_variables()
    print(
        f"metering demo: the shipped contract {DEMO_CONTRACT.relative_to(REPO_ROOT)} and usage logs "
        f"{DEMO_RAW_DIR.relative_to(REPO_ROOT)}/ and {DEMO_LATER_DIR.relative_to(REPO_ROOT)}/ (METERING_CONTRACT and "
        f"METERING_RAW_DIR are not used), the bundled Stripe emulator, state in {settings.state_dir}",
        flush=True,
    )
    # The demo's state must only ever be the demo's: every step (and the Dagster run it starts) reads these.
    settings = export_environment(
        replace(settings, contract_path=DEMO_CONTRACT, raw_dir=settings.state_dir.resolve() / "raw")
    )
    deleted = prepare_state(settings)
    shutil.copytree(DEMO_RAW_DIR, settings.raw_dir)  # October's logs arrive
    _step(
        f"Demo state in {settings.state_dir}: "
        + (f"the previous demo's {', '.join(deleted)} deleted" if deleted else "new")
        + " (Dagster's run history is kept)"
    )
    _step(f"Stripe test clock -> {IN_GRACE.isoformat()} (October closed, its invoice is a draft in the grace period)")
    code = advance_clock(settings, IN_GRACE)
    if code:
        return code
    _step("metering run: land, validate, dedupe, aggregate, gate, report usage to Stripe")
    code = run_once(settings)
    if code:
        return code
    _step(f"Stripe test clock -> {AFTER_GRACE.isoformat()} (grace over: Stripe finalizes the invoice)")
    code = advance_clock(settings, AFTER_GRACE)
    if code:
        return code
    _step("metering run: nothing new to send; reconcile Stripe's final invoice against ours")
    code = run_once(settings)
    if code:
        return code
    _step("Reconciliation, per customer, meter and period, and Stripe's invoices")
    print_invoices(settings)
    _step(
        f"Early November usage arrives ({DEMO_LATER_DIR.relative_to(REPO_ROOT)}/): metering run, then the budget "
        "alerts and what the entitlements API answers"
    )
    shutil.copytree(DEMO_LATER_DIR, settings.raw_dir, dirs_exist_ok=True)
    code = run_once(settings)
    if code:
        return code
    print_budgets(settings)
    print(
        "\nOpen the Dagster UI with `make dev`; query the marts with "
        '`.venv/bin/metering query "select * from marts.rpt_reconciliation"`.'
    )
    return 0

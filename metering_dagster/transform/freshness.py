"""Whether a metering run has anything to do: the one decision behind a cheap run when nothing is new.

A run has nothing new when, since the last run that completed (`ops.metering_runs`, finished):
- no file waits to land (a new file, or one whose size, time and content differ from what landing recorded) and
  nothing landed since (`raw.landed_files` as that run's dbt step read it);
- the contract file and the dbt project's files are byte for byte the same, and the engine too (any change
  rebuilds);
- nothing waits in the Stripe outbox (meter events not sent, except those waiting for Stripe's clock to reach
  their time, which it has not), in the dead-letter table, among the period adjustments, or among the budget
  alerts to deliver;
- Stripe's side cannot have changed (`billing/changes.py`: Stripe's time past no period end or finalization that
  run did not see, no customer whose snapshot is due).
A failed or killed run (started, never finished) is never skipped over. Then dbt and every step after it would
rebuild the same marts from the same inputs: the run skips them, and `metering run` says "nothing new since run N".

The metering job's dbt step decides (after landing and reading Stripe's time), `metering run` decides before
loading Dagster at all, the schedule and sensor before starting a run: the same function, `decide`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb

from metering_dagster.billing.changes import period_invoices_state, stripe_change_since
from metering_dagster.billing.client import open_stripe
from metering_dagster.billing.clock import current_clock_time
from metering_dagster.contract import load_contract
from metering_dagster.contract.model import Contract
from metering_dagster.display import count
from metering_dagster.landing.land import escaped_file_name, list_log_files
from metering_dagster.locks import run_lock
from metering_dagster.schema import ensure_run_tables
from metering_dagster.settings import REPO_ROOT, Settings, metering_engine
from metering_dagster.warehouse import WarehouseHeld, connect

# The job whose runs are recorded and may be skipped (the budget job always builds: a file started it).
SKIPPABLE_JOB = "metering_job"
# A run tagged with this does its work whatever the decision (the UI's launchpad, a test).
FORCE_TAG = "metering/force"

DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"
DBT_SOURCE_SUFFIXES = (".sql", ".yml", ".yaml", ".csv", ".md")
DBT_GENERATED = ("target", "logs", "dbt_packages")


@dataclass(frozen=True)
class Freshness:
    """The decision: `work` says why the run has work to do, None when nothing is new since `last_run`."""

    work: str | None
    last_run: int | None = None
    last_finished_at: datetime | None = None

    @property
    def nothing_new(self) -> bool:
        return self.work is None

    def words(self) -> str:
        """One line for the terminal, the step's log and the schedule's SkipReason."""
        if self.work is not None:
            return self.work
        return f"nothing new since run {self.last_run} (finished at {self.last_finished_at.isoformat()})"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def dbt_project_sha256(project_dir: Path = DBT_PROJECT_DIR) -> str:
    """Hash of every source file of the dbt project (models, macros, tests, YAML): what the manifest is parsed from."""
    digest = hashlib.sha256()
    for path in sorted(project_dir.rglob("*")):
        relative = path.relative_to(project_dir)
        if path.suffix in DBT_SOURCE_SUFFIXES and relative.parts[0] not in DBT_GENERATED and path.is_file():
            digest.update(relative.as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def build_definition() -> str:
    """What builds the marts: the engine of the dbt steps and the dbt project's files (a change of either
    rebuilds: marts built on one engine are not taken as built on the other)."""
    return f"{metering_engine()}:{dbt_project_sha256()}"


def _build_change(recorded: str, number: int) -> str | None:
    now = build_definition()
    if now == recorded:
        return None
    engine, _, _ = now.partition(":")
    recorded_engine, _, _ = recorded.partition(":")
    if engine != recorded_engine:
        return f"the engine changed since run {number} ({recorded_engine} to {engine})"
    return f"the dbt project changed since run {number}"


def landed_state(con: duckdb.DuckDBPyConnection) -> str:
    """What has landed, in one value that changes with any file or line landed (or quarantined)."""
    row = con.execute(
        "select count(*), coalesce(max(landing_run_id), 0), coalesce(sum(line_count), 0),"
        " coalesce(sum(size_bytes), 0) from raw.landed_files"
    ).fetchone()
    return "/".join(str(value) for value in row)


def files_to_land(con: duckdb.DuckDBPyConnection, raw_dir: Path) -> int:
    """The log files landing would read: not landed, or not as landed (size, time, then content, as landing does)."""
    landed = {
        name: (size, mtime, sha)
        for name, size, mtime, sha in con.execute(
            "select source_file, size_bytes, file_mtime_ns, content_sha256 from raw.landed_files"
        ).fetchall()
    }
    waiting = 0
    for name, (size, mtime) in list_log_files(raw_dir).items():
        recorded = landed.get(escaped_file_name(name) or name)
        if recorded is None or recorded[0] != size:
            waiting += 1
        elif recorded[1] != mtime and file_sha256(raw_dir / name) != recorded[2]:
            waiting += 1
        # same size and time: landing may still hash a file written just before it landed ("racy"); its
        # content is what landing recorded unless size or time moved, which the lines above see
    return waiting


def _waiting_to_send(con: duckdb.DuckDBPyConnection, stripe_now: datetime) -> str | None:
    """What a run would send: the outboxes to Stripe and to the budget alerts' receiver."""
    waiting = [
        (
            """select count(*) from ops.stripe_ledger where status = 'pending'
               and not (coalesce(last_error, '') like 'timestamp_in_future%' and event_timestamp > ?)""",
            [stripe_now],
            "meter event",
            "in the Stripe outbox",
        ),
        ("select count(*) from ops.stripe_dead_letters where resolved_at is null", [], "dead letter", "to retry"),
        ("select count(*) from ops.stripe_adjustments where status = 'pending'", [], "period adjustment", "to send"),
        ("select count(*) from ops.budget_alerts where status = 'pending'", [], "budget alert", "to deliver"),
    ]
    for sql, params, noun, where in waiting:
        try:
            n = con.execute(sql, params).fetchone()[0]
        except duckdb.CatalogException:  # a table a first run creates
            continue
        if n:
            return f"{count(n, noun)} {where}"
    return None


def last_run(con: duckdb.DuckDBPyConnection) -> tuple | None:
    """The latest recorded run: number, finished_at, landed, contract_sha256, dbt_project_sha256, stripe_now,
    period_invoices."""
    try:
        return con.execute(
            """select run_number, finished_at, landed, contract_sha256, dbt_project_sha256, stripe_now,
               period_invoices from ops.metering_runs order by run_number desc limit 1"""
        ).fetchone()
    except duckdb.CatalogException:
        return None


def decide(
    con: duckdb.DuckDBPyConnection,
    contract: Contract,
    contract_path: Path,
    stripe_now: datetime | Callable[[], datetime] | None,
    raw_dir: Path | None = None,
) -> Freshness:
    """Whether the run has anything to do (module doc). `raw_dir`: also count the files waiting to land (a run
    that has not landed yet). `stripe_now`: Stripe's time, or how to ask for it (asked only when everything
    else is unchanged); None: unknown, so the run works."""
    last = last_run(con)
    if last is None:
        return Freshness("no metering run has completed yet")
    number, finished_at, landed, contract_sha, dbt_sha, seen_stripe_now, seen_invoices = last
    if finished_at is None:
        return Freshness(f"run {number} did not complete: this run does its work", number)
    try:
        waiting_files = files_to_land(con, raw_dir) if raw_dir is not None else 0
        landed_now = landed_state(con)
    except duckdb.CatalogException:
        return Freshness("nothing has landed yet", number)
    reason = (
        (waiting_files and f"{count(waiting_files, 'new or changed file')} to land")
        or (landed_now != landed and f"new usage landed since run {number}")
        or (file_sha256(contract_path) != contract_sha and f"the contract changed since run {number}")
        or _build_change(dbt_sha, number)
        or (seen_stripe_now is None and f"run {number} did not read Stripe's time")
    )
    if not reason and callable(stripe_now):
        stripe_now = stripe_now()
    reason = reason or (
        (stripe_now is None and "Stripe's time is unknown")
        or _waiting_to_send(con, stripe_now)
        or stripe_change_since(con, contract, stripe_now, seen_stripe_now, seen_invoices, finished_at)
    )
    return Freshness(reason or None, number, finished_at)


def stripe_time(settings: Settings, contract: Contract, con: duckdb.DuckDBPyConnection) -> datetime:
    """Stripe's now, asked once (the test clock; the wall clock in live mode), for a decision before a run."""
    with open_stripe(settings, contract) as stripe:
        return current_clock_time(stripe.client, con, contract)


def decide_before_run(
    settings: Settings, lock_wait_seconds: float | None = None, say: Callable[[str], None] = lambda message: None
) -> Freshness:
    """`decide` before a run starts (`metering run`, the schedule, the sensor), under the run lock, asking Stripe
    its time once. `RunLockBusy` when another run holds the state folder (after `lock_wait_seconds`); the
    warehouse missing or held by another process counts as work: the run itself then waits or says why."""
    if not settings.warehouse_path.exists():
        return Freshness("no warehouse yet: the first run builds it")
    try:
        with run_lock(settings.state_dir, wait_seconds=lock_wait_seconds, say=say):
            con = connect(settings.warehouse_path, wait_seconds=0)  # held: the run itself waits, as configured
            try:
                contract = load_contract(settings.contract_path)
                return decide(
                    con,
                    contract,
                    settings.contract_path,
                    lambda: stripe_time(settings, contract, con),
                    settings.raw_dir,
                )
            finally:
                con.close()
    except WarehouseHeld as held:
        return Freshness(f"the warehouse is in use: {held}")


def record_run_started(
    con: duckdb.DuckDBPyConnection, dagster_run_id: str, contract_path: Path, stripe_now: datetime | None
) -> int:
    """Before a run's dbt step builds: what it builds from. Its number, which `record_run_finished` completes."""
    ensure_run_tables(con)
    number = con.execute("select coalesce(max(run_number), 0) + 1 from ops.metering_runs").fetchone()[0]
    con.execute(
        "insert into ops.metering_runs values (?, ?, now(), null, ?, ?, ?, ?, null)",
        [number, dagster_run_id, landed_state(con), file_sha256(contract_path), build_definition(), stripe_now],
    )
    return number


def record_run_finished(con: duckdb.DuckDBPyConnection, dagster_run_id: str) -> int | None:
    """After every step of the run succeeded: a next run with nothing new may skip. The run's number, if recorded."""
    ensure_run_tables(con)
    row = con.execute(
        """update ops.metering_runs set finished_at = now(), period_invoices = ?
           where dagster_run_id = ? returning run_number""",
        [period_invoices_state(con), dagster_run_id],
    ).fetchone()
    return row[0] if row else None

"""`metering demo` cannot hurt a real setup: it refuses, deleting nothing, unless the state folder is a demo's.

The refusals run the real command (`python -m metering_dagster.cli demo`) and compare every file of the state
folder byte for byte before and after. The demo story itself runs once, in tests/docs/test_readme_commands.py
(`make demo` on a fresh clone); here a previous demo's folder is only reset.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from metering_dagster.commands.demo import DEMO_RAW_DIR, MARKER, prepare_state
from metering_dagster.settings import REPO_ROOT, Settings
from stripe_emulator.storage import SCHEMA as EMULATOR_SCHEMA


def files_of(folder: Path) -> dict[str, str]:
    """Every file under `folder` with the hash of its bytes (folders as entries too)."""
    found = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        found[key] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "<dir>"
    return found


def demo(state: Path, **extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("STRIPE_API_KEY", "STRIPE_API_BASE")}
    env.update(METERING_STATE_DIR=str(state), DAGSTER_HOME=str(state / "dagster_home"), **extra)
    return subprocess.run(
        [sys.executable, "-m", "metering_dagster.cli", "demo"],
        check=False,
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_refused(result: subprocess.CompletedProcess, *words: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("metering demo: "), result.stderr
    assert "Nothing was deleted" in lines[0]
    for word in words:
        assert word in lines[0], lines[0]


SHIPPED_LOG = DEMO_RAW_DIR / "2026-10-01.jsonl"


def write_warehouse(path: Path, stripe_customer: str, landed: Path = SHIPPED_LOG) -> None:
    """A warehouse that landed the file `landed` and whose ledger delivered one meter event to `stripe_customer`."""
    from metering_dagster.billing.ledger import ensure_ledger
    from metering_dagster.warehouse import connect

    connect(path, wait_seconds=0).close()  # the warehouse's own schemas and source tables
    con = duckdb.connect(str(path))
    try:
        ensure_ledger(con)
        content = landed.read_bytes()
        con.execute(
            "INSERT INTO raw.landed_files (source_file, content_sha256, size_bytes, line_count, landing_run_id,"
            " landed_at) VALUES (?, ?, ?, ?, 1, now())",
            [landed.name, hashlib.sha256(content).hexdigest(), len(content), content.count(b"\n")],
        )
        con.execute(
            "INSERT INTO ops.stripe_customers VALUES ('cus_acme', ?, NULL, NULL, '2026-10-01', now())",
            [stripe_customer],
        )
        con.execute(
            """INSERT INTO ops.stripe_ledger (identifier, customer_id, meter, period_start, period_end, seq,
                   stripe_formula, value, quantity_after, event_timestamp, status, created_at, sent_at, sent_to)
               VALUES ('mtr_1', 'cus_acme', 'api_calls', '2026-10-01', '2026-11-01', 1, 'sum', 5, 5,
                       '2026-10-02', 'sent', now(), now(), ?)""",
            [stripe_customer],
        )
    finally:
        con.close()


def write_emulator_state(path: Path, *object_ids: str) -> None:
    lite = sqlite3.connect(path)
    try:
        lite.executescript(EMULATOR_SCHEMA)
        lite.executemany(
            "INSERT INTO objects (id, type, data) VALUES (?, 'customer', '{}')", [(i,) for i in object_ids]
        )
        lite.commit()
    finally:
        lite.close()


def test_a_state_folder_that_is_not_a_demos_is_refused_and_kept_byte_for_byte(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    write_warehouse(state / "warehouse.duckdb", "cus_RealCustomer01")
    (state / "notes.txt").write_text("the team's notes\n")
    (state / "adjustments").mkdir()
    (state / "adjustments" / "2026-10.csv").write_text("customer,amount\n")
    before = files_of(state)

    result = demo(state)

    assert_refused(result, "warehouse.duckdb", "notes.txt", "adjustments/", MARKER)
    assert files_of(state) == before


def test_a_stripe_key_is_refused_without_touching_the_state_or_showing_the_key(tmp_path):
    state = tmp_path / "state"
    (state / "dagster_home").mkdir(parents=True)
    result = demo(state, STRIPE_API_KEY="sk_test_51NotARealKeyButLongEnough")

    assert_refused(result, "STRIPE_API_KEY")
    assert "51NotARealKey" not in result.stdout + result.stderr
    assert files_of(state) == {"dagster_home": "<dir>"}


def test_a_stripe_base_is_refused(tmp_path):
    state = tmp_path / "state"
    result = demo(state, STRIPE_API_BASE="https://api.stripe.com")

    assert_refused(result, "STRIPE_API_BASE")
    assert not state.exists()


def test_a_demo_folder_whose_ledger_sent_to_another_stripe_is_refused(tmp_path):
    """A previous demo's folder in which `metering run` then ran with a real key: its ledger must stay."""
    state = tmp_path / "state"
    state.mkdir()
    (state / MARKER).write_text("demo\n")
    write_emulator_state(state / "stripe_emulator.sqlite", "cus_FromTheEmulator")
    write_warehouse(state / "warehouse.duckdb", "cus_RealCustomer01")
    before = files_of(state)

    result = demo(state)

    assert_refused(result, "cus_RealCustomer01", "not the bundled emulator")
    assert files_of(state) == before


def test_a_demo_folder_that_landed_other_usage_is_refused(tmp_path):
    """A previous demo's folder then used, with the bundled emulator, for one's own logs: they must stay."""
    state = tmp_path / "state"
    state.mkdir()
    (state / MARKER).write_text("demo\n")
    write_emulator_state(state / "stripe_emulator.sqlite", "cus_FromTheEmulator")
    own_log = tmp_path / "2026-11-01.jsonl"
    own_log.write_text('{"event_id": "e1", "timestamp": "2026-11-01T00:00:00Z", "customer_id": "c", "action": "a"}\n')
    write_warehouse(state / "warehouse.duckdb", "cus_FromTheEmulator", landed=own_log)
    before = files_of(state)

    result = demo(state)

    assert_refused(result, "2026-11-01.jsonl", "not the demo's")
    assert files_of(state) == before


def settings_for(state: Path) -> Settings:
    return Settings(state_dir=state, raw_dir=state / "raw", contract_path=state / "metering.yml")


def test_a_previous_demos_folder_is_reset_keeping_dagster_history_and_files_it_did_not_write(tmp_path, monkeypatch):
    state = tmp_path / "state"
    (state / "dagster_home").mkdir(parents=True)
    (state / "dagster_home" / "runs.db").write_text("run history")
    (state / MARKER).write_text("demo\n")
    write_emulator_state(state / "stripe_emulator.sqlite", "cus_FromTheEmulator")
    write_warehouse(state / "warehouse.duckdb", "cus_FromTheEmulator")
    (state / "analytics.duckdb").write_bytes(b"marts")
    (state / "logs").mkdir()
    (state / "logs" / "last_run.log").write_text("dbt said")
    (state / "kept.txt").write_text("not the demo's")
    monkeypatch.setenv("DAGSTER_HOME", str(state / "dagster_home"))

    deleted = prepare_state(settings_for(state))

    assert set(deleted) == {"warehouse.duckdb", "analytics.duckdb", "stripe_emulator.sqlite", "logs"}
    assert set(files_of(state)) == {MARKER, "dagster_home", "dagster_home/runs.db", "kept.txt", "metering.lock"}


@pytest.mark.parametrize("dagster_home_inside", [True, False])
def test_a_new_folder_is_marked_before_anything_is_written(tmp_path, monkeypatch, dagster_home_inside):
    state = tmp_path / "state"
    home = state / "dagster_home" if dagster_home_inside else tmp_path / "home"
    home.mkdir(parents=True)  # `make demo` creates DAGSTER_HOME first
    state.mkdir(exist_ok=True)
    (state / "metering.lock").touch()  # an idle lock, left by e.g. `metering explain` run first
    monkeypatch.setenv("DAGSTER_HOME", str(home))

    assert prepare_state(settings_for(state)) == []
    assert (state / MARKER).exists()
    # the marked folder is the demo's from now on: a second demo resets it
    (state / "analytics.duckdb").write_bytes(b"marts")
    assert prepare_state(settings_for(state)) == ["analytics.duckdb"]

"""Hostile settings and paths: a missing raw folder, file names that are not UTF-8, bad tuning values,
customer ids that try to leave the state folder."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from metering_dagster.landing.land import land_new_files
from metering_dagster.locks import run_lock
from metering_dagster.warehouse import connect
from tests.pipeline.conftest import Warehouse, dbt  # noqa: F401  (the session's dbt project)

REPO = Path(__file__).resolve().parents[2]

NOW = datetime(2026, 11, 2, tzinfo=UTC)


def _event(event_id: str) -> str:
    return json.dumps(
        {
            "event_id": event_id,
            "timestamp": "2026-10-05T00:00:00Z",
            "customer_id": "cus_acme",
            "action": "llm.completion",
            "metadata": {"tokens": 1},
        }
    )


def test_a_missing_raw_folder_stops_landing_and_names_the_folder(tmp_path):
    missing = tmp_path / "no-such-raw"
    con = connect(tmp_path / "warehouse.duckdb")
    try:
        with pytest.raises(Exception, match=f"{missing}.*does not exist.*METERING_RAW_DIR") as info:
            land_new_files(con, missing, now=NOW)
        assert type(info.value).__name__ == "RawFolderMissing"
        assert con.execute("select count(*) from raw.landed_files").fetchone() == (0,)
    finally:
        con.close()


def test_a_file_name_that_is_not_utf8_is_quarantined_and_the_other_files_land(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "good.jsonl").write_text(_event("e1") + "\n")
    bad = os.path.join(os.fsencode(raw), b"caf\xe9-\xff.jsonl")  # a Latin-1 name
    with open(bad, "wb") as f:
        f.write((_event("e2") + "\n").encode())
    con = connect(tmp_path / "warehouse.duckdb")
    try:
        result = land_new_files(con, raw, now=NOW)
        assert sorted(f.source_file for f in result.landed) == ["caf\\xe9-\\xff.jsonl", "good.jsonl"]
        rows = con.execute(
            "select source_file, event_id, landing_problem from raw.usage_lines order by source_file"
        ).fetchall()
        assert rows == [("caf\\xe9-\\xff.jsonl", None, "invalid_file_name"), ("good.jsonl", "e1", None)]
        # lines read = landed + blank + quarantined, file by file
        assert [(f.lines_read, f.lines_landed, f.lines_blank, f.lines_quarantined) for f in result.landed] == [
            (1, 0, 0, 1),
            (1, 1, 0, 0),
        ]
        # landed once: the next run skips it under the same escaped name
        again = land_new_files(con, raw)
        assert again.landed == () and sorted(again.skipped) == ["caf\\xe9-\\xff.jsonl", "good.jsonl"]
    finally:
        con.close()


BAD_TUNING = {
    "METERING_DUCKDB_MEMORY_LIMIT": ("lots", "a size such as 1GB, 512MB or 2GiB"),
    "METERING_DUCKDB_THREADS": ("two", "a whole number from 1 to 1024"),
    "METERING_STRIPE_VERIFY_HOURS": ("nan", "a number of at least 0"),
    "METERING_STRIPE_CONCURRENCY": ("0", "a whole number from 1 to 64"),
    "METERING_LOCK_WAIT_SECONDS": ("-5", "a number of at least 0"),
    "METERING_WAREHOUSE_WAIT_SECONDS": ("1e999", "a number of at least 0"),
    "METERING_LANDING_SETTLE_SECONDS": ("60s", "a number of at least 0"),
    "METERING_DEAD_LETTER_MAX_AGE_SECONDS": ("6h", "a whole number of at least 1"),
    "METERING_ENV": ("prod env", "a word such as production or staging"),
}


def test_bad_tuning_values_stop_metering_run_naming_each_variable(metering_env):
    env = dict(os.environ, **{name: value for name, (value, _) in BAD_TUNING.items()})
    result = subprocess.run(
        [sys.executable, "-m", "metering_dagster.cli", "run"],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    for name, (value, expected) in BAD_TUNING.items():
        assert f"metering: {name} must be {expected}, got {value!r}" in result.stderr, (name, result.stderr)
    assert not (metering_env["state"] / "warehouse.duckdb").exists()  # stopped before anything ran


@pytest.mark.parametrize(
    ("name", "read"),
    [
        ("METERING_DUCKDB_THREADS", lambda tmp: connect(tmp / "w.duckdb")),
        ("METERING_WAREHOUSE_WAIT_SECONDS", lambda tmp: connect(tmp / "w.duckdb")),
        ("METERING_LANDING_SETTLE_SECONDS", lambda tmp: land_new_files(connect(tmp / "w.duckdb", wait_seconds=0), tmp)),
        ("METERING_LOCK_WAIT_SECONDS", lambda tmp: run_lock(tmp).__enter__()),
    ],
)
def test_each_module_reads_its_variable_through_settings(tmp_path, monkeypatch, name, read):
    from metering_dagster.settings import SettingsError

    monkeypatch.setenv(name, BAD_TUNING[name][0])
    with pytest.raises(SettingsError, match=f"^{name} must be {re.escape(BAD_TUNING[name][1])}, got"):
        read(tmp_path)


HOSTILE_IDS = ["../../escaped", "%2E%2E", "..", "cus:a|b*?<>"]


@pytest.fixture(scope="module")
def explained_warehouse(dbt, tmp_path_factory):  # noqa: F811
    root = tmp_path_factory.mktemp("explain")
    (root / "state").mkdir()
    absolute = str(root / "absolute")  # an id that is an absolute path
    ids = [*HOSTILE_IDS, absolute]
    wh = Warehouse(state_dir=root / "state", raw_dir=root / "raw")
    customers = "\n".join(f'  - {{id: "{cid}", billing_anchor: "2026-10-01T00:00:00Z"}}' for cid in ids)
    wh.write_contract(
        "environment: test\ncurrency: usd\nmeters:\n"
        '  - {key: calls, action: call, aggregation: count, price: {model: per_unit, unit_amount_decimal: "1"}}\n'
        f"customers:\n{customers}\n"
    )
    wh.add_file(
        "calls.jsonl",
        [
            {"event_id": f"e{i}", "timestamp": "2026-10-05T00:00:00Z", "customer_id": cid, "action": "call"}
            for i, cid in enumerate(ids)
        ],
    )
    wh.land(datetime(2026, 11, 2, tzinfo=UTC))
    dbt.run(wh.state_dir, "build", "--exclude", "tag:reconciliation")
    return wh, ids


def test_explain_writes_its_csv_inside_the_state_folder_whatever_the_customer_id(explained_warehouse):
    from metering_dagster.commands.explain import explain
    from metering_dagster.serving.reader_copy import publish_reader_copy
    from metering_dagster.settings import Settings
    from metering_dagster.warehouse import connect

    wh, ids = explained_warehouse
    settings = Settings(state_dir=wh.state_dir, raw_dir=wh.raw_dir, contract_path=wh.state_dir / "metering.yml")
    with connect(wh.path) as con:  # explain reads the copy a run publishes
        publish_reader_copy(con, settings)
    out_dir = (wh.state_dir / "explain").resolve()
    paths = []
    for i, cid in enumerate(ids):
        explanation = explain(settings, cid, "2026-10-01T00:00:00+00:00")
        assert [line.events for line in explanation.lines] == [1], cid
        assert explanation.csv_path.parent == out_dir, (cid, explanation.csv_path)
        assert f"calls,e{i}," in explanation.csv_path.read_text()
        paths.append(explanation.csv_path)
    assert len(set(paths)) == len(ids)  # no two ids share a file
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(p.name for p in paths)
    outside = [p for p in wh.state_dir.parent.rglob("*.csv") if not p.is_relative_to(out_dir)]
    assert outside == []
    from metering_dagster.commands.explain import csv_file_name

    for cid in ("\x00", "a/b", "x" * 500, "é/../.."):  # names of ids the contract refuses, should one get here
        name = csv_file_name(cid, "2026-10-01")
        assert "/" not in name and "\x00" not in name and ".." not in name and len(name) < 160

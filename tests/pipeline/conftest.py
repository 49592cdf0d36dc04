"""Fixtures for the pipeline tests: a dbt project prepared once per session, warehouses in tmp dirs."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from metering_dagster.contract import load_contract, write_contract_tables
from metering_dagster.landing import land_new_files
from metering_dagster.warehouse import connect

REPO = Path(__file__).resolve().parents[2]
DBT_PROJECT = REPO / "dbt_project"
LANDED_AT = datetime(2026, 11, 2, tzinfo=UTC)


class DbtProject:
    """dbt run in-process (dbtRunner) against the real project; parsed once per session."""

    def __init__(self, work_dir: Path):
        from dbt.cli.main import dbtRunner

        self.work_dir = work_dir
        self.common = [
            "--project-dir",
            str(DBT_PROJECT),
            "--profiles-dir",
            str(DBT_PROJECT),
            "--target-path",
            str(work_dir / "target"),
            "--log-path",
            str(work_dir / "logs"),
            "--quiet",
        ]
        os.environ["METERING_STATE_DIR"] = str(work_dir)  # parse needs the profile to render
        result = dbtRunner().invoke(["parse", *self.common])
        assert result.success, result.exception
        self.runner = dbtRunner(manifest=result.result)

    def run(self, state_dir: Path, *args: str):
        os.environ["METERING_STATE_DIR"] = str(state_dir)
        try:
            result = self.runner.invoke([args[0], *self.common, *args[1:]])
        finally:
            _release_duckdb()
        failures = (
            [
                f"{r.node.name}: {r.status} {r.message}"
                for r in (result.result or [])
                if str(r.status) not in ("success", "pass")
            ]
            if result.result is not None and hasattr(result.result, "__iter__")
            else []
        )
        assert result.success and not failures, f"dbt {' '.join(args)} failed: {result.exception} {failures}"
        return result


def _release_duckdb() -> None:
    """dbt-duckdb keeps its DuckDB open in-process between invocations; close it so tests can read."""
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    env = DuckDBConnectionManager._ENV
    if env is not None and hasattr(env, "close"):
        env.close()
    DuckDBConnectionManager.close_all_connections()


@pytest.fixture(scope="session")
def dbt(tmp_path_factory) -> DbtProject:
    previous = os.environ.get("METERING_STATE_DIR")
    project = DbtProject(tmp_path_factory.mktemp("dbt"))
    yield project
    if previous is None:
        os.environ.pop("METERING_STATE_DIR", None)
    else:
        os.environ["METERING_STATE_DIR"] = previous


@dataclass
class Warehouse:
    """A warehouse in a tmp state dir: write a contract, drop raw files, land them, query."""

    state_dir: Path
    raw_dir: Path

    @property
    def path(self) -> Path:
        return self.state_dir / "warehouse.duckdb"

    def write_contract(self, text: str) -> None:
        contract_path = self.state_dir / "metering.yml"
        contract_path.write_text(text)
        with connect(self.path) as con:
            write_contract_tables(con, load_contract(contract_path))

    def add_file(self, name: str, lines: list) -> None:
        path = self.raw_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        text = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
        if name.endswith(".gz"):
            import gzip

            path.write_bytes(gzip.compress(text.encode(), mtime=0))
        else:
            path.write_text(text)

    def land(self, now: datetime = LANDED_AT):
        with connect(self.path) as con:
            return land_new_files(con, self.raw_dir, now=now)

    def query(self, sql: str, params=None) -> list[tuple]:
        with connect(self.path, read_only=True) as con:
            return con.execute(sql, params or []).fetchall()

    def snapshot(self, table: str) -> list[tuple]:
        """Sorted rows of a table, for equality between builds."""
        with connect(self.path, read_only=True) as con:
            return sorted(con.execute(f"select * from {table}").fetchall(), key=repr)


@pytest.fixture
def warehouse(tmp_path) -> Warehouse:
    state = tmp_path / "state"
    state.mkdir()
    return Warehouse(state_dir=state, raw_dir=tmp_path / "raw")


def event(event_id: str, timestamp, customer_id: str, action: str, **extra) -> dict:
    return {"event_id": event_id, "timestamp": timestamp, "customer_id": customer_id, "action": action, **extra}


def copy_demo(tmp_path: Path) -> Path:
    raw = tmp_path / "demo_raw"
    shutil.copytree(REPO / "data" / "demo" / "raw", raw)
    return raw

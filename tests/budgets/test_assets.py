"""The Dagster asset `budget_alerts` and its check `budget_alerts_delivered`, materialized against a real warehouse
file in the test's state folder (the mart's rows written by the test, as dbt would have built them)."""

from __future__ import annotations

import dagster as dg

from metering_dagster.defs.budgets.definitions import defs as budget_defs
from metering_dagster.defs.resources import MeteringResource
from metering_dagster.warehouse import connect
from tests.budgets.conftest import SECRET, Status, set_status


def materialize(state) -> dg.ExecuteInProcessResult:
    assets = list(budget_defs.assets) + list(budget_defs.asset_checks)
    return dg.materialize(assets, resources={"metering": MeteringResource()}, raise_on_error=True)


def write_status(state, *rows: Status) -> None:
    con = connect(state / "warehouse.duckdb")
    try:
        set_status(con, *rows)
    finally:
        con.close()


def alert_rows(state) -> list[tuple]:
    con = connect(state / "warehouse.duckdb", read_only=True)
    try:
        return con.execute("SELECT threshold_percent, status FROM ops.budget_alerts ORDER BY creation_order").fetchall()
    finally:
        con.close()


def outcome(result: dg.ExecuteInProcessResult) -> tuple[dict, bool]:
    metadata = result.asset_materializations_for_node("budget_alerts")[0].metadata
    (check,) = result.get_asset_check_evaluations()
    return {k: v.value for k, v in metadata.items()}, check.passed


def test_without_a_webhook_url_alerts_are_recorded_and_the_check_passes(metering_env, receiver, monkeypatch):
    monkeypatch.delenv("METERING_WEBHOOK_URL", raising=False)
    write_status(metering_env["state"], Status("cus_acme", "monthly_spend", "6000", "5000"))
    metadata, passed = outcome(materialize(metering_env["state"]))
    assert metadata["new_alerts"] == 2 and metadata["webhook"].startswith("not set")
    assert passed
    assert alert_rows(metering_env["state"]) == [(80, "recorded"), (100, "recorded")]
    assert receiver.received == []


def test_undelivered_alerts_fail_the_check_until_a_later_run_delivers_them(metering_env, receiver, monkeypatch):
    monkeypatch.setenv("METERING_WEBHOOK_URL", receiver.url)
    monkeypatch.setenv("METERING_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("METERING_WEBHOOK_ATTEMPTS", "2")
    monkeypatch.setenv("METERING_WEBHOOK_BACKOFF_SECONDS", "0")
    write_status(metering_env["state"], Status("cus_acme", "monthly_spend", "6000", "5000"))
    receiver.fail_next = 100

    metadata, passed = outcome(materialize(metering_env["state"]))  # the check does not block: the run succeeds
    assert (metadata["new_alerts"], metadata["delivered"], metadata["failed"], metadata["left_pending"]) == (2, 0, 2, 0)
    assert not passed
    assert alert_rows(metering_env["state"]) == [(80, "pending"), (100, "pending")]

    receiver.fail_next = 0
    metadata, passed = outcome(materialize(metering_env["state"]))
    assert (metadata["new_alerts"], metadata["delivered"]) == (0, 2)
    assert passed
    assert alert_rows(metering_env["state"]) == [(80, "delivered"), (100, "delivered")]
    assert [r.payload["threshold_percent"] for r in receiver.accepted] == [80, 100]

"""What a run did, in a few lines a person reads in a terminal."""

from __future__ import annotations

import duckdb

from metering_dagster.runner import RunOutcome
from metering_dagster.settings import Settings
from metering_dagster.warehouse import connect


def _scalar(con: duckdb.DuckDBPyConnection, sql: str, default=0):
    try:
        row = con.execute(sql).fetchone()
    except duckdb.Error:
        return default
    return row[0] if row and row[0] is not None else default


def warehouse_figures(settings: Settings) -> dict[str, object]:
    if not settings.warehouse_path.exists():
        return {}
    con = connect(settings.warehouse_path, read_only=True)
    try:
        statuses = {}
        try:
            statuses = dict(con.execute("select status, count(*) from marts.rpt_reconciliation group by 1 order by 1").fetchall())
        except duckdb.Error:
            pass
        return {
            "lines landed (all runs)": _scalar(con, "select count(*) from raw.usage_lines"),
            "quarantined": _scalar(con, "select count(*) from marts.rpt_quarantined_events"),
            "duplicates": _scalar(con, "select count(*) from marts.rpt_duplicate_events"),
            "customer-meter-periods": _scalar(con, "select count(*) from marts.fct_usage_by_period"),
            "shadow invoice total (cents)": _scalar(con, "select sum(amount_cents) from marts.fct_invoice_lines_expected"),
            "reconciliation": ", ".join(f"{k}: {v}" for k, v in statuses.items()) or "-",
        }
    finally:
        con.close()


def print_run_summary(outcome: RunOutcome, settings: Settings) -> None:
    state = "succeeded" if outcome.success else ("withheld the upload" if outcome.withheld else "failed")
    print(f"metering run {outcome.run_id[:8]} {state}")
    landing = outcome.materialized.get("landed_usage_lines")
    if landing:
        print(f"  landing: {', '.join(f'{k}={v}' for k, v in landing.items() if not isinstance(v, (dict, list)))}")
    upload = outcome.materialized.get("stripe_usage_report")
    if upload:
        print(f"  stripe upload: {', '.join(f'{k}={v}' for k, v in upload.items() if not isinstance(v, (dict, list)))}")
    for name, value in outcome.figures.items():
        print(f"  {name}: {value}")
    for check in outcome.failed_checks:
        kind = "blocking check" if check["blocking"] else "check"
        customers = check["metadata"].get("failing_customers") or check["metadata"].get("customers_with_differences") or "-"
        print(f"  {kind} {check['check']} on {check['asset']} failed: {check['description']} (customers: {customers})")
    for step in outcome.failed_steps:
        print(f"  failed step {step}")
    print(f"  analysts: metering query \"select ...\" (reads {settings.analytics_path})")
    print(f"  dbt log: {settings.state_dir / 'logs' / 'last_run.log'}; every event: the Dagster UI (make dev)")

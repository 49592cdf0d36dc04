"""What a run did, in a few lines a person reads in a terminal."""

from __future__ import annotations

import duckdb

from metering_dagster.runner import RunOutcome, blocks
from metering_dagster.settings import Settings
from metering_dagster.warehouse import connect


def _scalar(con: duckdb.DuckDBPyConnection, sql: str, default=0):
    try:
        row = con.execute(sql).fetchone()
    except duckdb.Error:
        return default
    return row[0] if row and row[0] is not None else default


# Figures kept for the message, not printed as such.
CLOCK_KEYS = ("_deferred_to_future", "_latest_deferred", "_stripe_clock")


def _stripe_clock_figures(con: duckdb.DuckDBPyConnection) -> dict[str, object]:
    """Meter events waiting because their time is ahead of Stripe's (the test clock is behind the data)."""
    try:
        waiting, latest = con.execute(
            """SELECT count(*), max(event_timestamp) FROM ops.stripe_ledger
               WHERE status = 'pending' AND last_error LIKE 'timestamp_in_future%'"""
        ).fetchone()
        clock = con.execute("SELECT max(frozen_time) FROM ops.stripe_test_clocks").fetchone()[0]
    except duckdb.Error:
        return {}
    return {"_deferred_to_future": waiting, "_latest_deferred": latest, "_stripe_clock": clock}


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
            **_stripe_clock_figures(con),
            "lines landed (all runs)": _scalar(con, "select count(*) from raw.usage_lines"),
            "quarantined": _scalar(con, "select count(*) from marts.rpt_quarantined_events"),
            "duplicates": _scalar(con, "select count(*) from marts.rpt_duplicate_events"),
            "customer-meter-periods": _scalar(con, "select count(*) from marts.fct_usage_by_period"),
            "shadow invoice total (cents)": _scalar(con, "select sum(amount_cents) from marts.fct_invoice_lines_expected"),
            "reconciliation": ", ".join(f"{k}: {v}" for k, v in statuses.items()) or "-",
        }
    finally:
        con.close()


def _state(outcome: RunOutcome) -> str:
    if outcome.crashed_steps or (not outcome.success and not outcome.withheld):
        return "failed"
    if outcome.withheld:
        return "withheld the upload"
    if outcome.attention:
        return "completed, but needs attention"
    return "succeeded"


def _clock_hint(outcome: RunOutcome) -> str | None:
    """Why reconciliation cannot pass yet when Stripe's test clock is behind the data, and what to do."""
    waiting = outcome.figures.get("_deferred_to_future") or 0
    if not waiting:
        return None
    latest, clock = outcome.figures.get("_latest_deferred"), outcome.figures.get("_stripe_clock")
    at = f" (at {clock.isoformat()})" if clock is not None else ""
    to = f" --to {latest.isoformat()}" if latest is not None else ""
    return (f"Stripe's test clock{at} is behind the data: {waiting} meter events are dated in Stripe's future and "
            f"wait until its clock reaches them, so Stripe cannot match the shadow invoice yet; move it with "
            f"`metering clock advance{to}`")


def print_run_summary(outcome: RunOutcome, settings: Settings) -> None:
    state = _state(outcome)
    print(f"metering run {outcome.run_id[:8]} {state}")
    landing = outcome.materialized.get("landed_usage_lines")
    if landing:
        print(f"  landing: {', '.join(f'{k}={v}' for k, v in landing.items() if not isinstance(v, (dict, list)))}")
    upload = outcome.materialized.get("stripe_usage_report")
    if upload:
        print(f"  stripe upload: {', '.join(f'{k}={v}' for k, v in upload.items() if not isinstance(v, (dict, list)))}")
    if state == "failed":
        # The warehouse still holds the last completed run's results: they are not this run's.
        print("  no figures: this run did not complete (the marts hold the last completed run)")
    else:
        reconciled = any(key.endswith("rpt_reconciliation") for key in outcome.materialized)
        for name, value in outcome.figures.items():
            if name in CLOCK_KEYS or (name == "reconciliation" and not reconciled):
                continue  # the reconciliation shown is this run's, never an earlier one's
            print(f"  {name}: {value}")
    for check in outcome.failed_checks:
        kind = "blocking check" if blocks(check) else "check (the others went on)" if check["blocking"] else "check"
        customers = check["metadata"].get("failing_customers") or check["metadata"].get("customers_with_differences") \
            or check["metadata"].get("customers") or "-"
        print(f"  {kind} {check['check']} on {check['asset']} failed: {check['description']} (customers: {customers})")
    hint = _clock_hint(outcome)
    if hint and any(c["check"] == "stripe_matches_shadow_invoice" for c in outcome.failed_checks):
        print(f"  {hint}")
    for step in outcome.failed_steps:
        print(f"  failed step {step}")
    print(f"  analysts: metering query \"select ...\" (reads {settings.analytics_path})")
    print(f"  dbt log: {settings.state_dir / 'logs' / 'last_run.log'}; every event: the Dagster UI (make dev)")

"""What a run did, in a few lines a person reads in a terminal."""

from __future__ import annotations

from datetime import datetime

import duckdb

from metering_dagster.commands.outcome import RunOutcome, blocks
from metering_dagster.contract import ContractError, load_contract
from metering_dagster.display import count, money
from metering_dagster.settings import Settings
from metering_dagster.warehouse import WarehouseHeld, connect


def _scalar(con: duckdb.DuckDBPyConnection, sql: str, default=0, params: list | None = None):
    try:
        row = con.execute(sql, params or []).fetchone()
    except duckdb.Error:
        return default
    return row[0] if row and row[0] is not None else default


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


def warehouse_figures(settings: Settings, run_started_at: datetime | None = None) -> dict[str, object]:
    """The warehouse's totals after a run (every run's lines, not only this one's), and the customers this run
    sent meter events for (ledger rows sent since `run_started_at`)."""
    if not settings.warehouse_path.exists():
        return {}
    try:
        con = connect(settings.warehouse_path, read_only=True)
    except WarehouseHeld as held:  # e.g. a step's dbt still exiting: the summary says so instead of a traceback
        return {"_unreadable": str(held)}
    try:
        statuses = {}
        try:
            statuses = dict(
                con.execute("select status, count(*) from marts.rpt_reconciliation group by 1 order by 1").fetchall()
            )
        except duckdb.Error:
            pass
        customers_sent = None
        if run_started_at is not None:
            customers_sent = _scalar(
                con,
                """select count(distinct customer_id) from ops.stripe_ledger
                                           where status = 'sent' and sent_at >= ?""",
                params=[run_started_at],
            )
        return {
            **_stripe_clock_figures(con),
            "currency": _currency(settings),
            "lines_landed_total": _scalar(con, "select count(*) from raw.usage_lines"),
            "quarantined": _scalar(con, "select count(*) from marts.rpt_quarantined_events"),
            "duplicates": _scalar(con, "select count(*) from marts.rpt_duplicate_events"),
            "invoice_lines": _scalar(con, "select count(*) from marts.fct_invoice_lines_expected"),
            "invoice_cents": _scalar(con, "select sum(amount_cents) from marts.fct_invoice_lines_expected"),
            "customers_sent": customers_sent,
            "reconciliation": statuses,
            "blocked": _scalar(
                con,
                "select list(customer_id order by customer_id) from marts.fct_entitlements where access = 'block'",
                default=[],
            ),
        }
    finally:
        con.close()


def _currency(settings: Settings) -> str | None:
    try:
        return load_contract(settings.contract_path).currency
    except (ContractError, OSError):
        return None


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
    return (
        f"Stripe's test clock{at} is behind the data: {waiting} meter events are dated in Stripe's future and "
        f"wait until its clock reaches them, so Stripe cannot match the shadow invoice yet; move it with "
        f"`metering clock advance{to}`"
    )


def _landed_row(landing: dict[str, object]) -> str:
    text = f"{count(int(landing.get('files_landed', 0)), 'file')}, {count(int(landing.get('lines_landed', 0)), 'line')}"
    notes = [
        (
            landing.get("files_incomplete_waiting"),
            "waiting until it stops changing",
            "waiting until they stop changing",
        ),
        (landing.get("files_changed_refused"), "refused: changed after landing", "refused: changed after landing"),
        (landing.get("files_failed"), "could not be read", "could not be read"),
    ]
    told = [f"{count(int(n), 'file')} {one if n == 1 else many}" for n, one, many in notes if n]
    return text + (f" ({'; '.join(told)})" if told else "")


def _uploaded_row(upload: dict[str, object], customers: int | None) -> str:
    sent = int(upload.get("events_sent", 0))
    text = count(sent, "meter event") + " sent"
    if customers:
        text += f" for {count(customers, 'customer')}"
    notes = []
    if upload.get("deferred"):
        notes.append(f"{count(int(upload['deferred']), 'meter event')} waiting for Stripe's clock")
    if upload.get("dead_lettered"):
        notes.append(f"{count(int(upload['dead_lettered']), 'meter event')} parked in the dead-letter table")
    if upload.get("baselines"):
        # A rebuilt warehouse: these started from Stripe's meter event summaries, so nothing is sent twice.
        notes.append(
            f"{count(int(upload['baselines']), 'customer-meter-period')} started from what Stripe already held"
        )
    if upload.get("withheld_customers"):
        notes.append(f"{count(int(upload['withheld_customers']), 'customer')} withheld by the quality gate")
    held = upload.get("held_customers")
    if held and held != "-":
        notes.append(f"held: {held}")
    return text + (f" ({'; '.join(notes)})" if notes else "")


def _reconciliation_row(statuses: dict[str, int]) -> str:
    total = sum(statuses.values())
    text = f"{statuses.get('match', 0):,} of {count(total, 'line')} match Stripe"
    others = [f"{n:,} {status.replace('_', ' ')}" for status, n in statuses.items() if status != "match"]
    return text + (f"; {', '.join(others)}" if others else "")


def _budgets_row(alerts: dict[str, object], blocked: list[str]) -> str:
    """This run's budget alerts and what happened to them, and who the entitlements API now refuses."""
    new = int(alerts.get("new_alerts", 0))
    text = count(new, "new alert")
    if alerts.get("receiver") is None:
        text += " (recorded: no METERING_WEBHOOK_URL)" if new else ""
    else:
        sent, failed = int(alerts.get("delivered", 0)), int(alerts.get("failed", 0))
        waiting = failed + int(alerts.get("left_pending", 0))
        text += f", {count(sent, 'alert')} delivered" + (f", {waiting} waiting for the receiver" if waiting else "")
    return text + f"; {count(len(blocked), 'customer')} blocked" + (f": {', '.join(blocked)}" if blocked else "")


def _row(label: str, value: str) -> None:
    print(f"  {label:<16}{value}")


def _figure_rows(figures: dict[str, object], reconciled: bool, alerts: dict[str, object] | None) -> None:
    """The warehouse's totals, the shadow invoice, and when shown the reconciliation and the budgets."""
    _row(
        "warehouse",
        f"{count(int(figures.get('lines_landed_total', 0)), 'line')} landed (all runs), "
        f"{figures.get('quarantined', 0):,} quarantined, "
        f"{count(int(figures.get('duplicates', 0)), 'duplicate')}",
    )
    currency = figures.get("currency")
    cents = figures.get("invoice_cents", 0)
    total = money(cents, currency) if currency else f"{cents} (cents)"
    _row("shadow invoice", f"{total} over {count(int(figures.get('invoice_lines', 0)), 'line')}")
    if reconciled and figures.get("reconciliation"):
        _row("reconciliation", _reconciliation_row(figures["reconciliation"]))
    if alerts is not None:
        _row("budgets", _budgets_row(alerts, list(figures.get("blocked") or [])))


def _reader_rows(settings: Settings) -> None:
    print(f'  analysts: metering query "select ..." (reads {settings.analytics_path})')
    print(f"  dbt log: {settings.state_dir / 'logs' / 'last_run.log'}; every event: the Dagster UI (make dev)")


def print_nothing_new(words: str, settings: Settings) -> None:
    """A run that found nothing new (transform/freshness.py): why, and the figures the last run left, unchanged."""
    print(f"metering run: {words}; nothing to do, no Dagster run started")
    _row("landed", "0 files, 0 lines")
    _row("uploaded", "0 meter events sent")
    figures = warehouse_figures(settings)
    if "_unreadable" in figures:
        print(f"  no figures: the warehouse could not be read: {figures['_unreadable']}")
    elif figures:
        _figure_rows(figures, reconciled=True, alerts=None)
    _reader_rows(settings)


def print_run_summary(outcome: RunOutcome, settings: Settings, budget_run: bool = False) -> None:
    """A short table: what landed, what went to Stripe, the shadow invoice, the reconciliation, the checks."""
    state = _state(outcome)
    print(f"metering run{' --budgets' if budget_run else ''} {outcome.run_id[:8]} {state}")
    figures = outcome.figures
    landing = outcome.materialized.get("landed_usage_lines")
    if landing:
        _row("landed", _landed_row(landing))
    if budget_run:  # the budget job: budgets and the entitlements API only
        _row("uploaded", "nothing: a budget run sends nothing to Stripe (`metering run` uploads)")
    upload = outcome.materialized.get("stripe_usage_report")
    if upload:
        _row("uploaded", _uploaded_row(upload, figures.get("customers_sent")))
    if state == "failed":
        # The warehouse still holds the last completed run's results: they are not this run's.
        print("  no figures: this run did not complete (the marts hold the last completed run)")
    elif "_unreadable" in figures:
        print(f"  no figures: the warehouse could not be read after the run: {figures['_unreadable']}")
    elif figures:
        # the reconciliation shown is this run's, never an earlier one's
        reconciled = any(key.endswith("rpt_reconciliation") for key in outcome.materialized)
        _figure_rows(figures, reconciled, outcome.materialized.get("budget_alerts"))
    if outcome.failed_checks:
        _row("checks", f"{count(len(outcome.failed_checks), 'check')} failed")
    elif state != "failed":  # a run that stopped early did not run them all
        _row("checks", "all passed")
    for check in outcome.failed_checks:
        kind = "blocking check" if blocks(check) else "check (the others went on)" if check["blocking"] else "check"
        customers = (
            check["metadata"].get("failing_customers")
            or check["metadata"].get("customers_with_differences")
            or check["metadata"].get("customers")
            or "-"
        )
        # the customers once: a check whose description names them already gets no suffix
        named = customers == "-" or customers in check["description"]
        suffix = "" if named else f" (customers: {customers})"
        print(f"    {kind} {check['check']} on {check['asset']} failed: {check['description']}{suffix}")
    hint = _clock_hint(outcome)
    if hint and any(c["check"] == "stripe_matches_shadow_invoice" for c in outcome.failed_checks):
        print(f"  {hint}")
    for step in outcome.failed_steps:
        print(f"  failed step {step}")
    if outcome.crashed_steps:
        print(f"  tracebacks: the Dagster UI (make dev), run {outcome.run_id}")
    _reader_rows(settings)

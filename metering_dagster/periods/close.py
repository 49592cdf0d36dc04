"""Period close, run after every upload (the hourly run, the period-close schedule, `metering run`).

1. Read Stripe's subscription invoices (`invoices.refresh_period_invoices`); pending meter events of
   periods that are now final are `superseded` (they will be billed as adjustments).
2. For every period still open in Stripe whose usage is all uploaded, record the landing run it is
   uploaded through: the baseline that tells late events from the ones on the invoice.
3. For every draft period invoice: when a watermarked source that feeds the customer has not passed
   the period end, hold it (`auto_advance=false`) and raise an alert; when a held invoice's sources
   are complete, release it (finalize it if its grace is over, else give back `auto_advance`). Of a
   draft inside its grace whose usage is all uploaded, say that the final upload happened in the grace.
4. Bill what changed in finalized periods as adjustments on the next invoice (`adjustments.py`), and
   snapshot them into `stripe_view.invoice_adjustments` for the reconciliation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import stripe

from metering_dagster.billing import ledger
from metering_dagster.billing.clock import current_clock_time
from metering_dagster.billing.invoices import PeriodInvoice, record_draft_update, refresh_period_invoices
from metering_dagster.billing.months import from_epoch
from metering_dagster.billing.problems import CustomerProblems
from metering_dagster.contract.model import Contract
from metering_dagster.display import count
from metering_dagster.periods.adjustments import AdjustmentResult, adjust_finalized_periods, snapshot_adjustments
from metering_dagster.periods.watermarks import customer_sources, incomplete_sources, read_watermarks
from metering_dagster.schema import ensure_period_tables
from metering_dagster.warehouse import insert_rows

HOLD_METADATA_KEY = "metering_hold"


@dataclass
class PeriodCloseResult:
    stripe_now: datetime | None = None
    finalized: int = 0
    superseded: int = 0
    closed_in_grace: list[str] = field(default_factory=list)  # "final upload inside the grace period" lines
    late_in_grace: list[str] = field(default_factory=list)  # drafts in grace with usage still pending
    held: list[str] = field(default_factory=list)  # alerts: invoices held (new or still held)
    released: list[str] = field(default_factory=list)
    adjustments: AdjustmentResult = field(default_factory=AdjustmentResult)
    problems: list[str] = field(default_factory=list)  # customers whose Stripe reads failed: the others closed

    def lines(self) -> list[str]:
        out = [
            (
                f"period close at Stripe time {self.stripe_now.isoformat() if self.stripe_now else '-'}:"
                f" {count(self.finalized, 'period invoice')} final,"
                f" {count(self.superseded, 'meter event')} superseded by adjustments"
            )
        ]
        out += self.closed_in_grace
        out += [f"WARNING: {text}" for text in self.late_in_grace]
        out += [f"ALERT: {text}" for text in self.held]
        out += self.released
        out.append(self.adjustments.summary())
        out += [f"ALERT: could not read Stripe for {line}" for line in self.problems]
        return out

    def metadata(self) -> dict[str, Any]:
        return {
            "stripe_now": self.stripe_now.isoformat() if self.stripe_now else "-",
            "finalized_periods": self.finalized,
            "superseded_meter_events": self.superseded,
            "final_uploads_in_grace": len(self.closed_in_grace),
            "held_invoices": len(self.held),
            "released_invoices": len(self.released),
            "adjustments_new": len(self.adjustments.planned),
            "adjustments_sent": self.adjustments.sent,
            "adjustments_failed": self.adjustments.failed,
            "adjustment_cents": sum(a.amount_cents for a in self.adjustments.planned),
            "report": "\n".join(self.lines()),
        }


def _record_uploaded_through(con: duckdb.DuckDBPyConnection, pending: dict[tuple[str, int], int]) -> None:
    """Drafts with nothing pending: everything landed so far has been uploaded to them (one statement)."""
    run = con.execute("SELECT coalesce(max(landing_run_id), 0) FROM raw.usage_lines").fetchone()[0]
    busy = [[customer, ps] for (customer, ps), n in pending.items() if n]
    con.execute("CREATE OR REPLACE TEMP TABLE close_pending (customer_id VARCHAR, period_start BIGINT)")
    insert_rows(con, "INSERT INTO close_pending", "(?, ?::BIGINT)", busy)
    con.execute(
        """UPDATE ops.period_invoices AS p SET uploaded_through_run = ?
           WHERE NOT p.finalized AND NOT EXISTS (
               SELECT 1 FROM close_pending c
               WHERE c.customer_id = p.customer_id AND c.period_start = epoch(p.period_start)::BIGINT)""",
        [run],
    )


def _hold_states(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, int], tuple[Any, Any]]:
    return {
        (c, ps): (held, released)
        for c, ps, held, released in con.execute(
            "SELECT customer_id, epoch(period_start)::BIGINT, held_at, released_at FROM ops.period_invoices"
        ).fetchall()
    }


def _set_hold(con, pi: PeriodInvoice, *, reason: str | None, released: bool) -> None:
    if released:
        con.execute(
            """UPDATE ops.period_invoices SET released_at = now() WHERE customer_id = ? AND period_start = to_timestamp(?)""",
            [pi.customer_id, pi.period_start],
        )
    else:
        con.execute(
            """UPDATE ops.period_invoices SET held_at = coalesce(held_at, now()), hold_reason = ?, released_at = NULL
               WHERE customer_id = ? AND period_start = to_timestamp(?)""",
            [reason, pi.customer_id, pi.period_start],
        )


def _drafts(
    client,
    con,
    result: PeriodCloseResult,
    raw_dir: Path,
    now: datetime,
    grace: int,
    problems: CustomerProblems,
    held: dict[str, str],
) -> bool:
    """Holds, releases, the grace report. True when an invoice was finalized here."""
    watermarks = read_watermarks(raw_dir)
    feeds = customer_sources(con)
    pending = ledger.pending_periods(con)
    holds = _hold_states(con)
    changed = False
    drafts = con.execute(
        """SELECT customer_id, stripe_invoice_id, epoch(period_start)::BIGINT, epoch(period_end)::BIGINT, status,
                  auto_advance, epoch(finalizes_at)::BIGINT
           FROM ops.period_invoices WHERE status = 'draft' ORDER BY 1, 3"""
    ).fetchall()
    for row in drafts:
        pi = PeriodInvoice(row[0], row[1], row[2], row[3], row[4], bool(row[5]), row[6])
        with problems.guard(pi.customer_id):
            changed |= _close_draft(client, con, result, pi, watermarks, feeds, pending, holds, now, grace, held)
    return changed


def _close_draft(
    client,
    con,
    result: PeriodCloseResult,
    pi: PeriodInvoice,
    watermarks,
    feeds,
    pending,
    holds,
    now: datetime,
    grace: int,
    held: dict[str, str],
) -> bool:
    """One draft's hold, release or grace report. True when it was finalized here."""
    period = f"{pi.customer_id} period {from_epoch(pi.period_start):%Y-%m-%d}"
    grace_end = from_epoch(pi.period_end + grace)
    reasons = incomplete_sources(pi.customer_id, from_epoch(pi.period_end), watermarks, feeds)
    held_at, released_at = holds.get((pi.customer_id, pi.period_start), (None, None))
    if reasons:
        if pi.auto_advance:
            record_draft_update(
                con,
                client.v1.invoices.update(
                    pi.stripe_invoice_id,
                    {"auto_advance": False, "metadata": {HOLD_METADATA_KEY: "; ".join(reasons)[:500]}},
                ),
            )
        _set_hold(con, pi, reason="; ".join(reasons), released=False)
        result.held.append(
            f"invoice {pi.stripe_invoice_id} of {period} held (auto_advance=false): {'; '.join(reasons)}"
        )
        return False
    if held_at is not None and released_at is None:
        finalized = False
        if now >= grace_end:
            client.v1.invoices.finalize_invoice(pi.stripe_invoice_id, {"auto_advance": True})
            how = "finalized now (its grace period ended while it was held)"
            finalized = True
        else:
            record_draft_update(
                con,
                client.v1.invoices.update(
                    pi.stripe_invoice_id, {"auto_advance": True, "metadata": {HOLD_METADATA_KEY: ""}}
                ),
            )
            how = f"auto_advance restored, it finalizes at {grace_end.isoformat()}"
        _set_hold(con, pi, reason=None, released=True)
        result.released.append(f"invoice {pi.stripe_invoice_id} of {period} released, every source complete: {how}")
        return finalized
    if now < grace_end:
        left = pending.get((pi.customer_id, pi.period_start), 0)
        if pi.customer_id in held:
            result.late_in_grace.append(
                f"{period}: usage held by the quality gate, not uploaded ({held[pi.customer_id]}); grace period "
                f"ends {grace_end.isoformat()}"
            )
        elif left:
            result.late_in_grace.append(
                f"{period}: {left} meter events still pending, grace period ends {grace_end.isoformat()}"
            )
        else:
            result.closed_in_grace.append(
                f"{period}: final upload done at Stripe time {now.isoformat()}, inside the grace period "
                f"(ends {grace_end.isoformat()}, {int((grace_end - now).total_seconds()) // 60} min left)"
            )
    return False


def close_periods(
    client: stripe.StripeClient,
    con: duckdb.DuckDBPyConnection,
    contract: Contract,
    *,
    raw_dir: Path,
    state_dir: Path,
    held: dict[str, str],
) -> PeriodCloseResult:
    """Close what Stripe's clock says has ended. `held`: each customer the quality gate holds this run, with its
    reason (quality/holds.py `held_reasons`): their periods are reported, not uploaded, and get no adjustment."""
    ensure_period_tables(con)
    result = PeriodCloseResult(stripe_now=current_clock_time(client, con, contract))
    problems = CustomerProblems("period close")
    refresh_period_invoices(client, con, result.stripe_now, problems)
    _record_uploaded_through(con, ledger.pending_periods(con))
    if _drafts(client, con, result, raw_dir, result.stripe_now, contract.grace_period_seconds, problems, held):
        refresh_period_invoices(client, con, result.stripe_now, problems)
    result.superseded = ledger.supersede_finalized(con)
    result.finalized = con.execute("SELECT count(*) FROM ops.period_invoices WHERE finalized").fetchone()[0]
    result.adjustments = adjust_finalized_periods(client, con, contract, state_dir / "adjustments", problems, held)
    snapshot_adjustments(client, con, problems)
    problems.record(con)
    result.problems = problems.lines()
    return result

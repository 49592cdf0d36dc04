"""`metering corrections preview`: the money each customer would gain or lose from what has arrived.

What has arrived under the raw folder, and the contract as it is now, are written into a scratch copy of the
warehouse and rebuilt by dbt (from all landed lines when the contract's customers, anchors or meters changed,
as the next run will: a customer added to the contract brings the usage that arrived before it); each
customer × period × meter whose amount would change is listed with where the difference would be billed: on the period's own invoice while Stripe has not finalized it, else as an adjustment
on the next invoice (Stripe's invoices are read, nothing is written to Stripe). New negative `sum` events are counted as corrections; re-sent event ids that
are duplicates (their first copy was valid) are listed, since they will not count.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from decimal import Decimal

import duckdb

from metering_dagster.billing.client import open_stripe
from metering_dagster.billing.clock import current_clock_time
from metering_dagster.billing.invoices import refresh_period_invoices
from metering_dagster.billing.objects import stripe_objects_exist
from metering_dagster.commands.common import (
    EXIT_FAILED,
    EXIT_OK,
    check_contract,
    prepare_environment,
)
from metering_dagster.commands.scratch import dbt_run, scratch_copy
from metering_dagster.contract import load_contract, write_contract_tables
from metering_dagster.display import count, money, quantity
from metering_dagster.landing import land_new_files
from metering_dagster.progress import ProgressDisplay, report
from metering_dagster.schema import ensure_period_tables
from metering_dagster.serving.reader_copy import ReaderCopyMissing
from metering_dagster.settings import Settings
from metering_dagster.transform.rebuild import contract_changed_since_build
from metering_dagster.warehouse import utc_date


@dataclass(frozen=True)
class Change:
    customer_id: str
    period_start: str
    meter: str
    quantity_before: Decimal | None
    quantity_after: Decimal
    amount_before: int
    amount_after: int
    billed_on: str
    amount_problem: str | None = None  # amount_out_of_range: the line is too large to price (amount_after 0)

    @property
    def difference(self) -> int:
        return self.amount_after - self.amount_before


@dataclass
class Preview:
    changes: list[Change]
    new_events: int
    corrections: int
    duplicates: list[tuple[str, str, str, bool]]  # event_id, kept, duplicate, conflict
    currency: str = "usd"


def preview_corrections(settings: Settings) -> Preview:
    contract = load_contract(settings.contract_path)
    report("copying the reader copy of the warehouse into a scratch folder")
    with scratch_copy(settings) as folder:
        con = duckdb.connect(str(folder / "warehouse.duckdb"))
        try:
            ensure_period_tables(con)
            if stripe_objects_exist(con, contract):  # which periods Stripe has finalized by now (read only)
                report("reading which periods Stripe has finalized")
                with open_stripe(settings, contract) as conn:
                    refresh_period_invoices(conn.client, con, current_clock_time(conn.client, con, contract))
            before_run = con.execute("SELECT coalesce(max(landing_run_id), 0) FROM raw.usage_lines").fetchone()[0]
            report(f"landing what has arrived under {settings.raw_dir}")
            land_new_files(con, settings.raw_dir)
            con.execute("CREATE OR REPLACE TABLE ops.preview_before AS SELECT * FROM marts.fct_invoice_lines_expected")
            write_contract_tables(con, contract)
            rebuild = contract_changed_since_build(con, contract)
        finally:
            con.close()
        report(
            "rebuilding every model from all landed lines (the contract changed)"
            if rebuild
            else "building the models with what has arrived (dbt)"
        )
        dbt_run(folder, full_refresh=rebuild)
        report("models built", done=True)
        con = duckdb.connect(str(folder / "warehouse.duckdb"), read_only=True)
        try:
            rows = con.execute(
                f"""SELECT a.customer_id, {utc_date("a.period_start")}::VARCHAR, a.meter, b.quantity, a.quantity,
                          coalesce(b.amount_cents, 0), coalesce(a.amount_cents, 0), coalesce(p.finalized, false),
                          a.amount_problem
                   FROM marts.fct_invoice_lines_expected a
                   LEFT JOIN ops.preview_before b USING (customer_id, meter, period_start)
                   LEFT JOIN ops.period_invoices p USING (customer_id, period_start)
                   WHERE b.quantity IS DISTINCT FROM a.quantity OR b.amount_cents IS DISTINCT FROM a.amount_cents
                   ORDER BY 1, 2, 3"""
            ).fetchall()
            new_events, corrections = con.execute(
                "SELECT count(*), count(*) FILTER (WHERE value < 0) FROM intermediate.int_usage_events_metered WHERE landing_run_id > ?",
                [before_run],
            ).fetchone()
            duplicates = con.execute(
                """SELECT event_id, kept_source, duplicate_source, is_conflict FROM marts.rpt_duplicate_events
                   WHERE landing_run_id > ? ORDER BY 1""",
                [before_run],
            ).fetchall()
        finally:
            con.close()
    changes = [
        Change(
            c,
            p,
            m,
            qb,
            qa,
            int(ab),
            int(aa),
            "the next invoice, as an adjustment (period finalized)" if final else "this period's invoice",
            problem,
        )
        for c, p, m, qb, qa, ab, aa, final, problem in rows
    ]
    return Preview(changes, new_events, corrections, duplicates, contract.currency)


def print_preview(preview: Preview) -> None:
    print(
        f"not yet uploaded: {count(preview.new_events, 'new metered event')}, "
        f"{count(preview.corrections, 'correction')} (negative values)"
    )
    if not preview.changes:
        print("no customer would gain or lose money")
    customer = None
    for ch in preview.changes:
        if ch.customer_id != customer:
            customer = ch.customer_id
            total = sum(c.difference for c in preview.changes if c.customer_id == customer)
            print(f"{customer}: {money(total, preview.currency, signed=True)} in total")
        print(
            f"  {ch.period_start}  {ch.meter:<20} quantity {quantity(ch.quantity_before)} -> {quantity(ch.quantity_after)}"
            f"  amount {money(ch.amount_before, preview.currency)} -> {money(ch.amount_after, preview.currency)}"
            f"  ({money(ch.difference, preview.currency, signed=True)})"
            f"  -> {ch.billed_on}"
            + (f"  (not priced: {ch.amount_problem}, held from the upload)" if ch.amount_problem else "")
        )
    for event_id, kept, dup, conflict in preview.duplicates:
        print(
            f"duplicate, will not count: event {event_id} at {dup} (first copy kept at {kept}"
            f"{', content differs' if conflict else ''}); re-send a corrected event with a new event_id"
        )


def corrections_preview(settings: Settings) -> int:
    """The command: the preview printed, with progress while the scratch copy is rebuilt."""
    prepare_environment(settings)
    bad = check_contract(settings)
    if bad is not None:
        return bad
    display = ProgressDisplay("metering corrections preview")
    try:
        with display.listen():
            preview = preview_corrections(settings)  # from the reader copy: never waits for a run
    except ReaderCopyMissing as missing:
        print(f"metering: {missing}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        display.close()
    print_preview(preview)
    return EXIT_OK

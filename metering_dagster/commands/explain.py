"""`metering explain --customer ID --period START [--as-of TIME]`: every line of one invoice, explained.

The invoice total, then for each meter line of the customer's period: the quantity in the meter's unit and
how the meter's aggregation reached it, how it was priced, the usage per day behind it, the events and
duplicates, the quarantined lines of that meter, the late-usage adjustments billed for it, and a CSV of every
event id behind it. The customer's quarantined lines that no meter counts, and the lines whose customer cannot
be read, are listed once at the end.

It reads the reader copy (serving/reader_copy.py), never the warehouse: it answers during a run. With `--as-of` (a
landing time), the period is rebuilt in a scratch copy from the lines landed up to then only: the numbers that
were invoiced then.
"""

from __future__ import annotations

import hashlib
import re
import sys
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import duckdb

from metering_dagster.commands.common import EXIT_FAILED, EXIT_OK, prepare_environment
from metering_dagster.commands.scratch import dbt_run, scratch_copy
from metering_dagster.display import count, money, quantity
from metering_dagster.progress import ProgressDisplay
from metering_dagster.serving.explanation import (
    QUARANTINED_SHOWN,
    Explanation,
    QuarantinedLine,
    explain_lines,
    in_unit,
    not_explainable,
    period_events,
    utc_seconds,
    write_events_csv,
)
from metering_dagster.serving.reader_copy import ReaderCopyMissing, open_reader
from metering_dagster.settings import Settings

MAX_NAME_CHARS = 120


def csv_file_name(customer: str, period_start: str, as_of: datetime | None = None) -> str:
    """The CSV's file name, safe whatever the customer id: every byte other than a letter, a digit, `_` or
    `-` written `%XX` (so no `/`, `..` or NUL survives, and two ids never share a name); a long id is cut
    and a hash of it appended."""

    def escaped(text: str) -> str:
        return re.sub(
            r"[^A-Za-z0-9_-]", lambda m: "".join(f"%{b:02X}" for b in m.group().encode("utf-8", "surrogatepass")), text
        )

    name = escaped(customer)
    if len(name) > MAX_NAME_CHARS:
        name = f"{name[: MAX_NAME_CHARS - 17]}-{hashlib.sha256(customer.encode('utf-8', 'surrogatepass')).hexdigest()[:16]}"
    suffix = f"_as_of_{as_of:%Y%m%dT%H%M%S}" if as_of else ""
    return f"{name}_{escaped(period_start[:10])}{suffix}.csv"


def _inside(folder: Path, name: str) -> Path:
    path = (folder / name).resolve()
    if not path.is_relative_to(folder.resolve()):  # the name is escaped: a bug, never a user's id
        raise ValueError(f"explain: {name!r} is not a file name inside {folder}")
    return path


def explain_from(
    con: duckdb.DuckDBPyConnection, customer: str, period_start: str, out_dir: Path, as_of: datetime | None = None
) -> Explanation:
    """The explanation of every line, and the CSV of their event ids written into `out_dir`."""
    explanation = explain_lines(con, customer, period_start, as_of)
    if not explanation.lines:
        return explanation
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = _inside(out_dir, csv_file_name(customer, period_start, as_of))
    with open(csv_path, "w", newline="") as f:
        write_events_csv(period_events(con, customer, period_start), f)
    return replace(explanation, csv_path=csv_path)


def explain(settings: Settings, customer: str, period_start: str, as_of: datetime | None = None) -> Explanation:
    out_dir = settings.state_dir / "explain"
    con = open_reader(settings)
    try:
        # an unknown customer or a date inside a period is said at once, before any rebuild
        if as_of is None or not_explainable(con, customer, period_start)[0]:
            return explain_from(con, customer, period_start, out_dir, as_of)
    finally:
        con.close()
    display = ProgressDisplay("metering explain")  # the rebuild takes half a minute: say what it does
    try:
        display.update("copying the reader copy into a scratch folder", start=True)
        with scratch_copy(settings) as folder:
            con = duckdb.connect(str(folder / "warehouse.duckdb"))
            try:
                con.execute("DELETE FROM raw.usage_lines WHERE landed_at > ?", [as_of])
                con.execute("DELETE FROM raw.landed_files WHERE landed_at > ?", [as_of])
                kept = con.execute("SELECT count(*) FROM raw.usage_lines").fetchone()[0]
            finally:
                con.close()
            display.update(
                f"rebuilding every model from the {count(kept, 'line')} landed up to {utc_seconds(as_of)} "
                "(dbt, about half a minute)",
                start=True,
            )
            dbt_run(folder, full_refresh=True)
            display.update("rebuilt; explaining", done=True)
            con = duckdb.connect(str(folder / "warehouse.duckdb"), read_only=True)
            try:
                return explain_from(con, customer, period_start, out_dir, as_of)
            finally:
                con.close()
    finally:
        display.close()


def _print_quarantined(lines: list[QuarantinedLine], indent: str) -> None:
    for q in lines[:QUARANTINED_SHOWN]:
        detail = f": {q.detail}" if q.detail else ""
        event = f" (event {q.event_id})" if q.event_id else ""
        print(f"{indent}{q.source_file}:{q.line_number} {q.reason}{detail}{event}")


def print_explanation(e: Explanation) -> None:
    start = utc_seconds(datetime.fromisoformat(e.period_start))
    end = utc_seconds(datetime.fromisoformat(e.period_end)) if e.period_end else None
    head = f"customer {e.customer_id}, period {start}" + (f" to {end}" if end else "")
    if e.invoice:
        head += f"; Stripe invoice {e.invoice[0]} ({e.invoice[1]})"
    print(head)
    if e.as_of:
        print(
            f"as of {utc_seconds(e.as_of)}, a landing time: rebuilt from the lines landed up to then, whatever their "
            "event time"
        )
        if end and e.as_of < datetime.fromisoformat(e.period_end):
            print(
                f"  that is before the period's end ({end}): lines of the period landed after {utc_seconds(e.as_of)} "
                "are not included"
            )
    if e.problem:
        print(f"  {e.problem}")
    if not e.lines:
        if not e.problem:
            print("  no invoice line for this customer and period: no usage of it has been landed")
        return
    print(f"invoice total (our shadow invoice): {money(e.total_cents, e.currency)}, {count(len(e.lines), 'line')}")
    for line in e.lines:
        same = line.display_name.lower().replace(" ", "_") == line.meter.lower()
        name = f" ({line.display_name})" if line.display_name and not same else ""
        print(
            f"\n{line.meter}{name}: quantity {in_unit(line.quantity, line.unit)}, "
            f"amount {money(line.amount_cents, e.currency)}"
        )
        print(f"  {line.how}")
        for text in line.pricing:
            print(f"  {text}")
        print(
            f"  {count(line.events, 'event')}, {count(line.duplicates, 'duplicate')}, "
            f"{count(line.quarantined, 'quarantined line')}"
        )
        _print_quarantined(line.quarantined_lines, "    quarantined ")
        if line.quarantined > QUARANTINED_SHOWN:
            print(f"    and {line.quarantined - QUARANTINED_SHOWN} more: marts.rpt_quarantined_events")
        for day, q, n in line.daily:
            print(f"  {day}  {in_unit(q, line.unit):>20}  ({count(n, 'event')})")
        for seq, before, after, amount, status, item in line.adjustments:
            print(
                f"  late adjustment #{seq}: quantity {quantity(before)} -> {quantity(after)}, "
                f"{money(amount, e.currency, signed=True)} ({status}, {item})"
            )
    if e.quarantined_without_meter_count:
        print(
            f"\nquarantined lines no meter counts ({e.quarantined_without_meter_count}: no meter's action, or no "
            "customer that can be read, so they may be another customer's):"
        )
        _print_quarantined(e.quarantined_without_meter, "  ")
        if e.quarantined_without_meter_count > QUARANTINED_SHOWN:
            print(f"  and {e.quarantined_without_meter_count - QUARANTINED_SHOWN} more: marts.rpt_quarantined_events")
    print(f"\nevent ids: {e.csv_path}")


def explain_invoice(settings: Settings, customer: str, period: datetime, as_of: datetime | None) -> int:
    """The command: the explanation printed; exit 1 when the reader copy is missing or the invoice has no line."""
    prepare_environment(settings)
    try:  # from the reader copy: never waits for a run
        explanation = explain(settings, customer, period.strftime("%Y-%m-%dT%H:%M:%S+00:00"), as_of)
    except ReaderCopyMissing as missing:
        print(f"metering: {missing}", file=sys.stderr)
        return EXIT_FAILED
    print_explanation(explanation)
    return EXIT_OK if explanation.lines else EXIT_FAILED

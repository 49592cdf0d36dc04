"""`metering explain --customer ID --period START [--as-of TIME]`: every line of one invoice, explained.

For each meter line of the customer's period: the quantity and how it was priced, the usage per day
behind it, how many events, duplicates and quarantined lines, the late-usage adjustments billed for
it, and a CSV of every event id behind it. With `--as-of`, the period is rebuilt in a scratch copy
from the lines landed up to that time only: the numbers that were invoiced then.
"""

from __future__ import annotations

import csv
import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import duckdb

from metering_dagster.settings import Settings
from metering_dagster.warehouse import connect


@dataclass
class LineExplained:
    meter: str
    quantity: Decimal
    amount_cents: int
    pricing: list[str]
    daily: list[tuple[str, Decimal, int]]
    events: int
    duplicates: int
    quarantined: int
    adjustments: list[tuple[int, Decimal, Decimal, int, str, str]] = field(default_factory=list)


@dataclass
class Explanation:
    customer_id: str
    period_start: str
    period_end: str | None
    as_of: datetime | None
    lines: list[LineExplained]
    csv_path: Path | None
    invoice: tuple[str, str] | None  # (stripe invoice id, status)


def _q(value) -> str:
    return format(Decimal(value).normalize(), "f")


def _pricing(con, meter: str, model: str, quantity: Decimal) -> list[str]:
    billable = max(Decimal(quantity), Decimal(0))
    m = con.execute(
        "SELECT unit_amount_decimal, package_size, package_round FROM contract.meters WHERE meter = ?", [meter]
    ).fetchone()
    if model == "per_unit":
        return [f"per_unit: {_q(billable)} x {_q(m[0])}c"]
    if model == "package":
        return [f"package: {_q(billable)} in packages of {_q(m[1])} rounded {m[2]}, each {_q(m[0])}c"]
    tiers = con.execute(
        """SELECT tier_index, up_to, unit_amount_decimal, flat_amount_decimal FROM contract.price_tiers
           WHERE meter = ? ORDER BY tier_index""",
        [meter],
    ).fetchall()
    out, lower = [f"{model} on max(quantity, 0) = {_q(billable)}:"], Decimal(0)
    for index, up_to, unit, flat in tiers:
        upper = "inf" if up_to is None else _q(up_to)
        if model == "graduated":
            units = max(min(billable, up_to if up_to is not None else billable) - lower, Decimal(0))
            if units > 0 or index == 1:
                out.append(f"  tier {index} ({_q(lower)}, {upper}]: {_q(units)} x {_q(unit)}c + flat {_q(flat)}c")
        elif (billable > lower or index == 1) and (up_to is None or billable <= up_to):
            out.append(f"  tier {index} ({_q(lower)}, {upper}]: all {_q(billable)} x {_q(unit)}c + flat {_q(flat)}c")
        lower = up_to if up_to is not None else lower
    return out


MAX_NAME_CHARS = 120


def csv_file_name(customer: str, period_start: str, as_of: datetime | None = None) -> str:
    """The CSV's file name, safe whatever the customer id: every byte other than a letter, a digit, `_` or
    `-` written `%XX` (so no `/`, `..` or NUL survives, and two ids never share a name); a long id is cut
    and a hash of it appended."""
    def escaped(text: str) -> str:
        return re.sub(r"[^A-Za-z0-9_-]", lambda m: "".join(f"%{b:02X}" for b in m.group().encode("utf-8", "surrogatepass")),
                      text)

    name = escaped(customer)
    if len(name) > MAX_NAME_CHARS:
        name = f"{name[:MAX_NAME_CHARS - 17]}-{hashlib.sha256(customer.encode('utf-8', 'surrogatepass')).hexdigest()[:16]}"
    suffix = f"_as_of_{as_of:%Y%m%dT%H%M%S}" if as_of else ""
    return f"{name}_{escaped(period_start[:10])}{suffix}.csv"


def _inside(folder: Path, name: str) -> Path:
    path = (folder / name).resolve()
    if not path.is_relative_to(folder.resolve()):  # the name is escaped: a bug, never a user's id
        raise ValueError(f"explain: {name!r} is not a file name inside {folder}")
    return path


def explain_from(con: duckdb.DuckDBPyConnection, customer: str, period_start: str, out_dir: Path,
                 as_of: datetime | None = None) -> Explanation:
    lines = con.execute(
        """SELECT meter, quantity, amount_cents, price_model, period_end::VARCHAR FROM marts.fct_invoice_lines_expected
           WHERE customer_id = ? AND period_start = ?::TIMESTAMPTZ ORDER BY meter""",
        [customer, period_start],
    ).fetchall()
    explained = []
    period_end = lines[0][4] if lines else None
    has_adjustments = bool(con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'ops' AND table_name = 'stripe_adjustments'"
    ).fetchone()[0])
    for meter, quantity, amount, model, _ in lines:
        where = "customer_id = ? AND meter = ? AND period_start = ?::TIMESTAMPTZ"
        args = [customer, meter, period_start]
        daily = con.execute(
            """SELECT usage_date::VARCHAR, quantity, event_count FROM marts.fct_usage_daily
               WHERE customer_id = ? AND meter = ? AND usage_date >= ?::TIMESTAMPTZ::DATE AND usage_date < ?::TIMESTAMPTZ::DATE
               ORDER BY 1""",
            [customer, meter, period_start, period_end],
        ).fetchall()
        events = con.execute(f"SELECT count(*) FROM marts.fct_metered_events WHERE {where}", args).fetchone()[0]
        duplicates = con.execute(
            f"""SELECT count(*) FROM marts.rpt_duplicate_events d
                WHERE d.event_id IN (SELECT event_id FROM marts.fct_metered_events WHERE {where})""",
            args,
        ).fetchone()[0]
        quarantined = con.execute(
            """WITH q AS (
                   SELECT CASE WHEN json_valid(raw_line) THEN json_extract_string(raw_line, '$.customer_id') END AS customer_id,
                          CASE WHEN json_valid(raw_line) THEN json_extract_string(raw_line, '$.timestamp') END AS ts
                   FROM marts.rpt_quarantined_events)
               SELECT count(*) FROM q WHERE customer_id = ?
                 AND coalesce(try_cast(ts AS TIMESTAMPTZ) >= ?::TIMESTAMPTZ AND try_cast(ts AS TIMESTAMPTZ) < ?::TIMESTAMPTZ, true)""",
            [customer, period_start, period_end],
        ).fetchone()[0]
        adjustments = con.execute(
            f"""SELECT seq, quantity_before, quantity_after, amount_cents, status, coalesce(stripe_invoice_item_id, '-')
                FROM ops.stripe_adjustments WHERE {where} ORDER BY seq""",
            args,
        ).fetchall() if has_adjustments and as_of is None else []
        explained.append(LineExplained(meter, quantity, amount, _pricing(con, meter, model, quantity), daily,
                                       events, duplicates, quarantined, adjustments))
    invoice = None
    if con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'ops' AND table_name = 'period_invoices'").fetchone()[0]:
        invoice = con.execute(
            "SELECT stripe_invoice_id, status FROM ops.period_invoices WHERE customer_id = ? AND period_start = ?::TIMESTAMPTZ",
            [customer, period_start],
        ).fetchone()
    csv_path = None
    if lines:
        out_dir.mkdir(parents=True, exist_ok=True)
        csv_path = _inside(out_dir, csv_file_name(customer, period_start, as_of))
        rows = con.execute(
            """SELECT meter, event_id, event_ts, value, source_file, line_number, landing_run_id FROM marts.fct_metered_events
               WHERE customer_id = ? AND period_start = ?::TIMESTAMPTZ ORDER BY meter, event_ts, event_id""",
            [customer, period_start],
        ).fetchall()
        with open(csv_path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["meter", "event_id", "event_ts", "value", "source_file", "line_number", "landing_run_id"])
            for meter, event_id, ts, value, source_file, line_number, run in rows:
                writer.writerow([meter, event_id, ts.isoformat(), "" if value is None else _q(value), source_file,
                                 line_number, run])
    return Explanation(customer, period_start, period_end, as_of, explained, csv_path, invoice)


def explain(settings: Settings, customer: str, period_start: str, as_of: datetime | None = None) -> Explanation:
    out_dir = settings.state_dir / "explain"
    if as_of is None:
        con = connect(settings.warehouse_path, read_only=True)
        try:
            return explain_from(con, customer, period_start, out_dir)
        finally:
            con.close()
    from metering_dagster.periods.scratch import dbt_run, scratch_copy

    with scratch_copy(settings) as folder:
        con = duckdb.connect(str(folder / "warehouse.duckdb"))
        try:
            con.execute("DELETE FROM raw.usage_lines WHERE landed_at > ?", [as_of])
            con.execute("DELETE FROM raw.landed_files WHERE landed_at > ?", [as_of])
        finally:
            con.close()
        dbt_run(folder, full_refresh=True)
        con = duckdb.connect(str(folder / "warehouse.duckdb"), read_only=True)
        try:
            return explain_from(con, customer, period_start, out_dir, as_of)
        finally:
            con.close()


def print_explanation(e: Explanation) -> None:
    head = f"customer {e.customer_id}, period {e.period_start} to {e.period_end or '?'}"
    if e.as_of:
        head += f", rebuilt as of {e.as_of.isoformat()} (lines landed up to then)"
    if e.invoice:
        head += f"; Stripe invoice {e.invoice[0]} ({e.invoice[1]})"
    print(head)
    if not e.lines:
        print("  no invoice line for this customer and period")
        return
    for line in e.lines:
        print(f"\n{line.meter}: quantity {_q(line.quantity)}, amount {line.amount_cents / 100:.2f}")
        for text in line.pricing:
            print(f"  {text}")
        print(f"  events {line.events}, duplicates {line.duplicates}, quarantined lines {line.quarantined}")
        for day, q, n in line.daily:
            print(f"  {day}  {_q(q):>16}  ({n} events)")
        for seq, before, after, amount, status, item in line.adjustments:
            print(f"  late adjustment #{seq}: quantity {_q(before)} -> {_q(after)}, {amount / 100:+.2f} ({status}, {item})")
    print(f"\nevent ids: {e.csv_path}")

"""What `metering explain` says about the lines of one invoice, computed from a copy of the warehouse.

Shared by the command (commands/explain.py, which prints it and writes the CSV of event ids) and the usage
console's invoice-line page (serving/console/): both read a connection whose default catalog holds the
warehouse's `marts`, `contract` and `ops` schemas (the reader copy), so they say the same thing.
"""

from __future__ import annotations

import csv
import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TextIO

import duckdb

from metering_dagster.billing.months import period_containing
from metering_dagster.display import count, currency_decimals, money, quantity
from metering_dagster.warehouse import utc_date

QUARANTINED_SHOWN = 20  # per list; the rest is counted, with the query that lists it


@dataclass
class QuarantinedLine:
    source_file: str
    line_number: int
    reason: str
    detail: str | None
    event_id: str | None


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
    display_name: str = ""
    unit: str = ""
    aggregation: str = ""
    how: str = ""  # how the aggregation reached the quantity, in words
    quarantined_lines: list[QuarantinedLine] = field(default_factory=list)


@dataclass
class Explanation:
    customer_id: str
    period_start: str
    period_end: str | None
    as_of: datetime | None
    lines: list[LineExplained]
    csv_path: Path | None
    invoice: tuple[str, str] | None  # (stripe invoice id, status)
    currency: str = "usd"
    problem: str | None = None  # why there is nothing to explain (unknown customer, not a period start, ...)
    quarantined_without_meter: list[QuarantinedLine] = field(default_factory=list)
    quarantined_without_meter_count: int = 0

    @property
    def total_cents(self) -> int:
        return sum(line.amount_cents for line in self.lines)


def _q(value) -> str:
    return format(Decimal(value).normalize(), "f")


def _unit_price(cents: Decimal | None, currency: str) -> str:
    """A price per unit in the currency: `600` -> `6.00 USD`, `0.0004` -> `0.000004 USD` (never rounded)."""
    if cents is None:
        return "-"
    places = currency_decimals(currency)
    value = Decimal(cents).scaleb(-places).normalize()
    if -value.as_tuple().exponent <= places:
        return money(Decimal(cents), currency)
    return f"{value:f} {currency.upper()}"


def _pricing(con, meter: str, model: str, billable_quantity: Decimal, currency: str) -> list[str]:
    billable = max(Decimal(billable_quantity), Decimal(0))
    m = con.execute(
        "SELECT unit_amount_decimal, package_size, package_round FROM contract.meters WHERE meter = ?", [meter]
    ).fetchone()
    if model == "per_unit":
        return [f"per_unit: {quantity(billable)} x {_unit_price(m[0], currency)}"]
    if model == "package":
        return [
            (
                f"package: {quantity(billable)} in packages of {quantity(m[1])} rounded {m[2]}, "
                f"each {_unit_price(m[0], currency)}"
            )
        ]
    tiers = con.execute(
        """SELECT tier_index, up_to, unit_amount_decimal, flat_amount_decimal FROM contract.price_tiers
           WHERE meter = ? ORDER BY tier_index""",
        [meter],
    ).fetchall()
    out, lower = [f"{model} on max(quantity, 0) = {quantity(billable)}:"], Decimal(0)
    for index, up_to, unit, flat in tiers:
        upper = "inf" if up_to is None else quantity(up_to)
        bounds = f"tier {index} ({quantity(lower)}, {upper}]"
        prices = f"{_unit_price(unit, currency)} + flat {_unit_price(flat, currency)}"
        if model == "graduated":
            units = max(min(billable, up_to if up_to is not None else billable) - lower, Decimal(0))
            if units > 0 or index == 1:
                out.append(f"  {bounds}: {quantity(units)} x {prices}")
        elif (billable > lower or index == 1) and (up_to is None or billable <= up_to):
            out.append(f"  {bounds}: all {quantity(billable)} x {prices}")
        lower = up_to if up_to is not None else lower
    return out


def in_unit(value: Decimal | None, unit: str) -> str:
    """`353882, "token"` -> `353,882 tokens`; `0.1, "GB"` -> `0.1 GB` (a unit in capitals is not pluralised)."""
    text = quantity(value)
    if not unit:
        return text
    plural = unit.islower() and value is not None and Decimal(value) != 1 and not unit.endswith("s")
    return f"{text} {unit}{'s' if plural else ''}"


def utc_seconds(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _aggregation_in_words(
    con,
    customer: str,
    meter: str,
    period_start: str,
    period_end: str,
    aggregation: str,
    value_path: str | None,
    unit: str,
    line_quantity: Decimal,
) -> str:
    """How the meter's aggregation reached the line's quantity; for the last/max ones, which event it took."""
    of = f"{value_path} of each event" if value_path else "each event's value"
    if aggregation == "sum":
        return f"sum: the sum of {of} in the period"
    if aggregation == "count":
        return "count: the number of events in the period"
    if aggregation == "unique_count":
        return f"unique_count: the number of distinct values of {value_path or 'the value'} in the period"
    in_period = "customer_id = ? AND meter = ? AND event_ts >= ?::TIMESTAMPTZ AND event_ts < ?::TIMESTAMPTZ"
    args = [customer, meter, period_start, period_end]
    if aggregation == "max":
        words = "max: the highest value reported in the period"
        order = "value DESC, event_ts"
    elif aggregation == "last_during_period":
        words = "last_during_period: the last value reported in the period"
        order = "event_ts DESC, landing_run_id DESC, line_number DESC"
    elif aggregation == "last_ever":
        words = "last_ever: the last value ever reported"
        in_period = "customer_id = ? AND meter = ? AND event_ts < ?::TIMESTAMPTZ"
        args = [customer, meter, period_end]
        order = "event_ts DESC, landing_run_id DESC, line_number DESC"
    else:
        return aggregation
    row = con.execute(
        f"""SELECT value, event_ts, event_id FROM marts.fct_metered_events WHERE {in_period}
            ORDER BY value = ? DESC, {order} LIMIT 1""",
        [*args, line_quantity],
    ).fetchone()
    if row is None:
        return f"{words}: none yet"
    value, ts, event_id = row
    carried = " (an earlier period's: carried into this one)" if ts < datetime.fromisoformat(period_start) else ""
    return f"{words}, {in_unit(value, unit)} at {utc_seconds(ts)} (event {event_id}){carried}"


def _table_exists(con, schema: str, table: str) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?", [schema, table]
        ).fetchone()[0]
    )


# The customer's quarantined lines of the period (or with no readable time), with the action they name.
_QUARANTINED = """
    WITH q AS (
        SELECT source_file, line_number, reason, reason_detail, event_id,
               CASE WHEN json_valid(raw_line) THEN json_extract_string(raw_line, '$.customer_id') END AS customer_id,
               CASE WHEN json_valid(raw_line) THEN json_extract_string(raw_line, '$.action') END AS action,
               CASE WHEN json_valid(raw_line) THEN json_extract_string(raw_line, '$.timestamp') END AS ts
        FROM marts.rpt_quarantined_events)
    SELECT source_file, line_number, reason, reason_detail, event_id, customer_id, action FROM q
    WHERE coalesce(try_cast(ts AS TIMESTAMPTZ) >= ?::TIMESTAMPTZ AND try_cast(ts AS TIMESTAMPTZ) < ?::TIMESTAMPTZ, true)
      AND (customer_id = ? OR customer_id IS NULL)
    ORDER BY source_file, line_number"""


def not_explainable(con, customer: str, period_start: str) -> tuple[str | None, str | None]:
    """(why this customer and period have no invoice to explain, the period's end when it is known)."""
    customers = dict(con.execute("SELECT customer_id, billing_anchor FROM contract.customers").fetchall())
    if customer not in customers:
        close = difflib.get_close_matches(customer, list(customers), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; it has {count(len(customers), 'customer')}"
        return f"{customer} is not a customer of the contract{hint}", None
    start = datetime.fromisoformat(period_start)
    period = period_containing(customers[customer], start)
    if period[0] != start:
        return (
            f"{utc_seconds(start)} is not the start of a billing period of {customer}: it lies in the period "
            f"{utc_seconds(period[0])} to {utc_seconds(period[1])}; explain it with --period {utc_seconds(period[0])}"
        ), None
    if start < customers[customer]:
        return f"{customer}'s first billing period starts at {utc_seconds(customers[customer])}", utc_seconds(period[1])
    return None, utc_seconds(period[1])


def explain_lines(
    con: duckdb.DuckDBPyConnection,
    customer: str,
    period_start: str,
    as_of: datetime | None = None,
    meter: str | None = None,
) -> Explanation:
    """Every line of the customer's invoice for the period (only `meter`'s when given), explained; no CSV."""
    currency = (con.execute("SELECT any_value(currency) FROM contract.meters").fetchone() or ["usd"])[0] or "usd"
    problem, known_end = not_explainable(con, customer, period_start)
    if problem and known_end is None:
        return Explanation(customer, period_start, None, as_of, [], None, None, currency, problem)
    lines = con.execute(
        """SELECT l.meter, l.quantity, l.amount_cents, l.price_model, l.period_end::VARCHAR,
                  m.display_name, m.unit, m.aggregation, m.value_path, m.action
           FROM marts.fct_invoice_lines_expected AS l JOIN contract.meters AS m USING (meter)
           WHERE l.customer_id = ? AND l.period_start = ?::TIMESTAMPTZ AND (? IS NULL OR l.meter = ?)
           ORDER BY l.meter""",
        [customer, period_start, meter, meter],
    ).fetchall()
    period_end = lines[0][4] if lines else known_end
    has_adjustments = _table_exists(con, "ops", "stripe_adjustments")
    rows = con.execute(_QUARANTINED, [period_start, period_end, customer]).fetchall()
    quarantined = [QuarantinedLine(*row[:5]) for row in rows]
    actions = [row[5:] for row in rows]  # (customer id, action) of each
    meters_of_action: dict[str, list[str]] = {}
    for meter, action in con.execute("SELECT meter, action FROM contract.meters").fetchall():
        meters_of_action.setdefault(action, []).append(meter)
    explained = []
    for meter, line_quantity, amount, model, _, display_name, unit, aggregation, value_path, _ in lines:
        where = "customer_id = ? AND meter = ? AND period_start = ?::TIMESTAMPTZ"
        args = [customer, meter, period_start]
        daily = con.execute(
            f"""SELECT usage_date::VARCHAR, quantity, event_count FROM marts.fct_usage_daily
               WHERE customer_id = ? AND meter = ? AND usage_date >= {utc_date("?::TIMESTAMPTZ")}
                 AND usage_date < {utc_date("?::TIMESTAMPTZ")}
               ORDER BY 1""",
            [customer, meter, period_start, period_end],
        ).fetchall()
        events = con.execute(f"SELECT count(*) FROM marts.fct_metered_events WHERE {where}", args).fetchone()[0]
        duplicates = con.execute(
            f"""SELECT count(*) FROM marts.rpt_duplicate_events d
                WHERE d.event_id IN (SELECT event_id FROM marts.fct_metered_events WHERE {where})""",
            args,
        ).fetchone()[0]
        # a quarantined line of this customer counts for the meters of the action it names
        of_meter = [
            q
            for q, (who, action) in zip(quarantined, actions, strict=True)
            if who == customer and meter in meters_of_action.get(action, [])
        ]
        adjustments = (
            con.execute(
                f"""SELECT seq, quantity_before, quantity_after, amount_cents, status, coalesce(stripe_invoice_item_id, '-')
                FROM ops.stripe_adjustments WHERE {where} ORDER BY seq""",
                args,
            ).fetchall()
            if has_adjustments and as_of is None
            else []
        )
        how = _aggregation_in_words(
            con, customer, meter, period_start, period_end, aggregation, value_path, unit, line_quantity
        )
        explained.append(
            LineExplained(
                meter,
                line_quantity,
                amount,
                _pricing(con, meter, model, line_quantity, currency),
                daily,
                events,
                duplicates,
                len(of_meter),
                adjustments,
                display_name or "",
                unit or "",
                aggregation,
                how,
                of_meter,
            )
        )
    # lines no meter of the customer counts: no action a meter counts, or no customer that can be read
    without_meter = [
        q
        for q, (who, action) in zip(quarantined, actions, strict=True)
        if who is None or action not in meters_of_action
    ]
    invoice = None
    if _table_exists(con, "ops", "period_invoices"):
        invoice = con.execute(
            "SELECT stripe_invoice_id, status FROM ops.period_invoices WHERE customer_id = ? AND period_start = ?::TIMESTAMPTZ",
            [customer, period_start],
        ).fetchone()
    return Explanation(
        customer,
        period_start,
        period_end,
        as_of,
        explained,
        None,
        invoice,
        currency,
        problem,
        without_meter[:QUARANTINED_SHOWN],
        len(without_meter),
    )


# Every event behind a customer's period (or one line of it), in the order and columns of the CSV of event ids.
EVENT_COLUMNS = ("meter", "event_id", "event_ts", "value", "source_file", "line_number", "landing_run_id")
EVENTS_SQL = f"""SELECT {", ".join(EVENT_COLUMNS)} FROM marts.fct_metered_events
    WHERE customer_id = ? AND period_start = ?::TIMESTAMPTZ AND (?::VARCHAR IS NULL OR meter = ?::VARCHAR)
    ORDER BY meter, event_ts, event_id"""


def period_events(
    con: duckdb.DuckDBPyConnection, customer: str, period_start: str, meter: str | None = None
) -> list[tuple]:
    return con.execute(EVENTS_SQL, [customer, period_start, meter, meter]).fetchall()


def write_events_csv(rows: Iterable[tuple], out: TextIO) -> None:
    """The CSV of event ids: one header line, then one row per event (times in UTC, values exact)."""
    writer = csv.writer(out)
    writer.writerow(EVENT_COLUMNS)
    for meter, event_id, ts, value, source_file, line_number, run in rows:
        writer.writerow(
            [
                meter,
                event_id,
                ts.astimezone(UTC).isoformat(),
                "" if value is None else _q(value),
                source_file,
                line_number,
                run,
            ]
        )

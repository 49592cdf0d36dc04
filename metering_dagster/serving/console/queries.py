"""What each console page shows, read from the published marts (analytics.duckdb) through one request's cursor.

Every query takes the customer id as a parameter and filters by it first; the customers page reads only the
small marts (invoice lines, budgets, reconciliation), never the event table, and one page of customers at a
time. Numbers stay exact (Decimal quantities, integer cents) up to the template, which formats them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

import duckdb

from metering_dagster.vocabulary import additive_aggregations, billed_invoice_statuses

# How bad a reconciliation status is, worst first: the one a customer's row shows when its lines differ.
STATUS_SEVERITY = ("missing_locally", "missing_in_stripe", "amount_mismatch", "quantity_mismatch", "not_yet_invoiced")
PAGE_SIZE = 100


@dataclass(frozen=True)
class Meter:
    key: str
    display_name: str
    unit: str
    aggregation: str

    @property
    def additive(self) -> bool:
        return self.aggregation in additive_aggregations()


@dataclass
class CustomerRow:
    customer_id: str
    access: str
    period_start: datetime | None = None
    period_end: datetime | None = None
    spend_cents: int | None = None
    currency: str = "usd"
    usage: list[tuple[str, Decimal]] = field(default_factory=list)
    highest_percent: Decimal | None = None
    budget_access: str | None = None
    reconciled_period: datetime | None = None
    reconciliation_status: str | None = None


def worst_status(statuses: list[str]) -> str:
    for status in STATUS_SEVERITY:
        if status in statuses:
            return status
    return "match"


def data_as_of(con: duckdb.DuckDBPyConnection) -> tuple[datetime | None, datetime | None]:
    """(as_of, Stripe's now) of the published data: one value for the whole copy."""
    row = con.execute("select as_of, stripe_now from marts.fct_entitlements order by customer_id limit 1").fetchone()
    return (row[0], row[1]) if row else (None, None)


def customer_exists(con: duckdb.DuckDBPyConnection, customer_id: str) -> bool:
    return (
        con.execute("select count(*) from marts.fct_entitlements where customer_id = ?", [customer_id]).fetchone()[0]
        > 0
    )


# The current period of each listed customer: the latest period with lines that starts by Stripe's now.
_CURRENT_LINES = """
    select customer_id, meter, period_start, period_end, quantity, amount_cents, currency
    from marts.fct_invoice_lines_expected
    where customer_id in (select unnest(?::varchar[]))
      and (?::timestamptz is null or period_start <= ?::timestamptz)
    qualify period_start = max(period_start) over (partition by customer_id)
    order by customer_id, meter
"""


def customers_page(con: duckdb.DuckDBPyConnection, page: int) -> tuple[list[CustomerRow], int]:
    """One page of customers (PAGE_SIZE, by id) with their current period, and how many customers there are."""
    total = con.execute("select count(*) from marts.fct_entitlements").fetchone()[0]
    rows = {
        cid: CustomerRow(cid, access)
        for cid, access in con.execute(
            "select customer_id, access from marts.fct_entitlements order by customer_id limit ? offset ?",
            [PAGE_SIZE, (page - 1) * PAGE_SIZE],
        ).fetchall()
    }
    ids = list(rows)
    _, stripe_now = data_as_of(con)
    unpriced = set()  # customers with a line too large to price: no spend to show
    for cid, meter, start, end, quantity, cents, currency in con.execute(
        _CURRENT_LINES, [ids, stripe_now, stripe_now]
    ).fetchall():
        row = rows[cid]
        row.period_start, row.period_end, row.currency = start, end, currency
        row.usage.append((meter, quantity))
        if cents is None:
            unpriced.add(cid)
        row.spend_cents = None if cid in unpriced else (row.spend_cents or 0) + cents
    for cid, percent, access in con.execute(
        """select customer_id, max(percent), case when bool_or(access = 'block') then 'block' else 'allow' end
           from marts.fct_budget_status where is_current and customer_id in (select unnest(?::varchar[]))
           group by customer_id""",
        [ids],
    ).fetchall():
        rows[cid].highest_percent, rows[cid].budget_access = percent, access
    for cid, start, statuses in con.execute(
        """select customer_id, period_start, list(status)
           from marts.rpt_reconciliation
           where customer_id in (select unnest(?::varchar[])) and invoice_status in (select unnest(?::varchar[]))
           group by customer_id, period_start
           qualify period_start = max(period_start) over (partition by customer_id)""",
        [ids, list(billed_invoice_statuses())],
    ).fetchall():
        rows[cid].reconciled_period, rows[cid].reconciliation_status = start, worst_status(statuses)
    return list(rows.values()), total


@dataclass
class Line:
    meter: str
    period_start: datetime
    period_end: datetime
    quantity: Decimal
    amount_cents: int | None
    currency: str
    price_model: str
    stripe_quantity: Decimal | None = None
    stripe_amount_cents: int | None = None
    status: str | None = None
    stripe_invoice_id: str | None = None
    invoice_status: str | None = None
    invoiced_amount_cents: int | None = None
    adjustment_amount_cents: int | None = None


_LINES = """
    select l.meter, l.period_start, l.period_end, l.quantity, l.amount_cents, l.currency, l.price_model,
           r.stripe_quantity, r.stripe_amount_cents, r.status, r.stripe_invoice_id, r.invoice_status,
           r.invoiced_amount_cents, r.adjustment_amount_cents
    from marts.fct_invoice_lines_expected as l
    left join marts.rpt_reconciliation as r
        on r.customer_id = l.customer_id and r.meter = l.meter and r.period_start = l.period_start
    where l.customer_id = ? and (?::timestamptz is null or l.period_start = ?::timestamptz)
    order by l.period_start desc, l.meter
"""


def invoice_lines(con: duckdb.DuckDBPyConnection, customer_id: str, period_start: datetime | None = None) -> list[Line]:
    """The customer's shadow invoice lines (of one period, or all), each beside Stripe's (rpt_reconciliation)."""
    return [Line(*row) for row in con.execute(_LINES, [customer_id, period_start, period_start]).fetchall()]


@dataclass
class Period:
    start: datetime
    end: datetime
    lines: list[Line]

    @property
    def currency(self) -> str:
        return self.lines[0].currency if self.lines else "usd"

    @property
    def our_total(self) -> int | None:
        amounts = [line.amount_cents for line in self.lines]
        return None if any(a is None for a in amounts) else sum(amounts)

    @property
    def billed(self) -> bool:
        return any(line.invoice_status in billed_invoice_statuses() for line in self.lines)

    @property
    def stripe_invoice_ids(self) -> list[str]:
        return sorted({line.stripe_invoice_id for line in self.lines if line.stripe_invoice_id})

    @property
    def stripe_status(self) -> str | None:
        statuses = sorted({line.invoice_status for line in self.lines if line.invoice_status})
        return ", ".join(statuses) or None

    def _sum(self, name: str) -> int | None:
        values = [getattr(line, name) for line in self.lines if getattr(line, name) is not None]
        return sum(values) if values else None

    @property
    def stripe_invoice_total(self) -> int | None:
        """Stripe's own invoice for the period: its lines' amounts, before adjustments billed later."""
        return self._sum("invoiced_amount_cents")

    @property
    def stripe_preview_total(self) -> int | None:
        return self._sum("stripe_amount_cents")

    @property
    def adjustments(self) -> int:
        return self._sum("adjustment_amount_cents") or 0


def periods_of(lines: list[Line]) -> list[Period]:
    """Lines grouped by period, latest first."""
    periods: dict[datetime, Period] = {}
    for line in lines:
        periods.setdefault(line.period_start, Period(line.period_start, line.period_end, [])).lines.append(line)
    return list(periods.values())


def current_period(periods: list[Period], stripe_now: datetime | None) -> Period | None:
    for period in periods:  # latest first
        if stripe_now is None or period.start <= stripe_now:
            return period
    return None


@dataclass(frozen=True)
class Budget:
    key: str
    kind: str
    meter: str | None
    unit: str
    used: Decimal | None
    limit: Decimal
    percent: Decimal | None
    access: str
    period_start: datetime


def budgets(con: duckdb.DuckDBPyConnection, customer_id: str) -> list[Budget]:
    """The customer's budgets in every period, current first."""
    return [
        Budget(*row)
        for row in con.execute(
            """select budget_key, budget_kind, meter, unit, used, limit_value, percent, access, period_start
               from marts.fct_budget_status where customer_id = ? order by period_start desc, budget_key""",
            [customer_id],
        ).fetchall()
    ]


def daily_usage(
    con: duckdb.DuckDBPyConnection, customer_id: str, since: datetime, until: datetime
) -> list[tuple[str, datetime, Decimal, int]]:
    """(meter, day, quantity, events) of each day with usage in [since, until)."""
    return con.execute(
        """select meter, usage_date, quantity, event_count from marts.fct_usage_daily
           where customer_id = ? and usage_date >= ?::timestamptz::date and usage_date < ?::timestamptz::date
           order by meter, usage_date""",
        [customer_id, since, until],
    ).fetchall()


# An hour's value from its events, by the meter's aggregation (what the period's quantity does, over one hour).
HOURLY_VALUE = {
    "sum": "sum(value)",
    "count": "count(*)",
    "max": "max(value)",
    "last_during_period": "arg_max(value, event_ts)",
    "last_ever": "arg_max(value, event_ts)",
    "unique_count": "count(distinct value_key)",
}


def hourly_usage(
    con: duckdb.DuckDBPyConnection, customer_id: str, period_start: datetime, meters: dict[str, Meter]
) -> list[tuple[str, datetime, Decimal, int]]:
    """(meter, hour, usage, events) of each hour with events in the period, by the meter's aggregation over the
    hour's events (HOURLY_VALUE): the sum, the number of events, the highest value, the distinct values, the last
    value reported."""
    cases, params = [], []
    for key, meter in sorted(meters.items()):
        cases.append(f"when meter = ? then {HOURLY_VALUE[meter.aggregation]}")
        params.append(key)
    value = f"case {' '.join(cases)} end" if cases else "null"
    return con.execute(
        f"""select meter, date_trunc('hour', event_ts) as hour, ({value})::decimal(38, 12), count(*)
            from marts.fct_metered_events
            where customer_id = ? and period_start = ?
            group by meter, hour order by meter, hour""",
        [*params, customer_id, period_start],
    ).fetchall()


def line_events_page(
    con: duckdb.DuckDBPyConnection, customer_id: str, period_start: datetime, meter: str, page: int
) -> list[tuple]:
    """One page of the line's events, in the order of the CSV of event ids."""
    return con.execute(
        """select event_id, event_ts, value, source_file, line_number from marts.fct_metered_events
           where customer_id = ? and period_start = ? and meter = ?
           order by event_ts, event_id limit ? offset ?""",
        [customer_id, period_start, meter, PAGE_SIZE, (page - 1) * PAGE_SIZE],
    ).fetchall()


def meters_of(reader: duckdb.DuckDBPyConnection) -> dict[str, Meter]:
    """The contract's meters as the last run saw them (the reader copy's contract.meters), by key."""
    return {
        key: Meter(key, name or key, unit or "", aggregation)
        for key, name, unit, aggregation in reader.execute(
            "select meter, display_name, unit, aggregation from contract.meters order by meter"
        ).fetchall()
    }

"""The post-finalization reconciliation: one result per customer × finalized period.

Read from `marts.rpt_reconciliation` (which counts a finalized invoice together with its late-usage
adjustments) and kept in `ops.period_reconciliation`, so that the result of the last check of each
customer stays visible (the asset check `closed_periods_reconciled` fails on any difference).
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from metering_dagster.schema import ensure_period_tables


@dataclass(frozen=True)
class PeriodResult:
    customer_id: str
    period_start: str
    result: str
    lines: int
    differences: int
    detail: str


def record_closed_period_results(con: duckdb.DuckDBPyConnection) -> list[PeriodResult]:
    ensure_period_tables(con)
    rows = con.execute(
        """SELECT r.customer_id, r.period_start, count(*) AS lines,
                  count(*) FILTER (WHERE r.status <> 'match') AS differences,
                  string_agg(CASE WHEN r.status <> 'match' THEN r.meter || ': ' || r.status END, '; ') AS detail
           FROM marts.rpt_reconciliation r
           JOIN ops.period_invoices p ON p.customer_id = r.customer_id AND p.period_start = r.period_start
           WHERE p.finalized
           GROUP BY ALL ORDER BY 1, 2"""
    ).fetchall()
    out = []
    for customer, period_start, lines, differences, detail in rows:
        result = "match" if differences == 0 else "difference"
        con.execute(
            """INSERT OR REPLACE INTO ops.period_reconciliation VALUES (?, ?, ?, ?, ?, ?, now())""",
            [customer, period_start, result, lines, differences, detail],
        )
        out.append(PeriodResult(customer, str(period_start), result, lines, differences, detail or ""))
    return out

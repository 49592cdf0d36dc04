"""Write the contract into the warehouse tables `contract.*` (docs/ARCHITECTURE.md)."""

from __future__ import annotations

import duckdb

from ..warehouse import ensure_source_tables, insert_rows
from .model import Contract


def contract_rows(contract: Contract) -> dict[str, list[tuple]]:
    """Rows per contract table; amounts stay Decimal (DuckDB binds them as exact decimals)."""
    meters, filters, tiers = [], [], []
    for m in contract.meters:
        p = m.price
        meters.append(
            (
                m.key,
                m.display_name,
                m.action,
                m.value_path,
                m.aggregation,
                m.unit,
                m.stripe_formula,
                p.model,
                p.package.unit_amount_decimal if p.package else p.unit_amount_decimal,
                p.package.size if p.package else None,
                p.package.round if p.package else None,
                p.currency,
                p.fingerprint,
            )
        )
        for f in m.filters:
            filters.extend((m.key, f.field_path, v) for v in f.allowed_values)
        for i, t in enumerate(p.tiers, start=1):
            tiers.append((m.key, i, t.up_to, t.unit_amount_decimal, t.flat_amount_decimal))
    return {
        "contract.settings": [
            (
                contract.environment,
                contract.currency,
                contract.grace_period_seconds,
                contract.effective_test_clock_start,
                contract.contract_fingerprint,
                contract.entitlements.fail_mode,
                contract.entitlements.max_staleness_seconds,
            )
        ],
        "contract.meters": meters,
        "contract.meter_filters": filters,
        "contract.price_tiers": tiers,
        "contract.customers": [(c.id, c.billing_anchor, c.interval) for c in contract.customers],
        "contract.budgets": [(b.key, b.customer, b.kind, b.meter, b.limit, b.on_exceed) for b in contract.budgets],
        "contract.budget_thresholds": [(b.key, b.customer, t) for b in contract.budgets for t in b.thresholds],
    }


def write_contract_tables(con: duckdb.DuckDBPyConnection, contract: Contract) -> None:
    """Replace every `contract.*` table with this contract, in one transaction."""
    ensure_source_tables(con)
    rows = contract_rows(contract)
    con.execute("begin transaction")
    try:
        for table, values in rows.items():
            con.execute(f"delete from {table}")
            if values:
                insert_rows(con, f"insert into {table}", f"({', '.join('?' * len(values[0]))})", values)
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise

"""Asset check results that list rows: one per customer problem, the customers named in the description."""

from __future__ import annotations

import dagster as dg


def rows_result(
    rows: list[tuple], keys: tuple[str, ...], *, severity, ok: str, failed: str, extra: dict
) -> dg.AssetCheckResult:
    """Pass when there is no row; else fail, naming the customers (first column) and listing the rows."""
    customers = sorted({r[0] for r in rows})
    return dg.AssetCheckResult(
        passed=not rows,
        severity=severity,
        description=ok if not rows else failed.format(n=len(rows), customers=", ".join(customers)),
        metadata={
            **extra,
            "customers": ", ".join(customers) or "-",
            "details": dg.MetadataValue.json([dict(zip(keys, r)) for r in rows]),
        },
    )

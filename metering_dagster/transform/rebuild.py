"""A contract change re-evaluates every landed line: the incremental models are rebuilt (`--full-refresh`).

The incremental models validate, dedupe and meter each landed line once, in its landing run, against the
contract of that time. The quarantine reasons that depend on the contract (`unknown_customer`,
`customer_not_in_contract`, `before_first_period`, `unmetered_action`, `wrong_environment`, the value
checks) and the period of every event (the anchor) must be decided again when the contract changes: a
customer added to the contract is billed for the usage that arrived before it was added. So the dbt
step rebuilds every model from all landed lines when the fingerprint below differs from the one the
models were last built with (`ops.dbt_contract_built`), and records it after a build that succeeded.

Prices, currency and grace period are not in the fingerprint: pricing is rebuilt on every run anyway.
`VALIDATION_RULES` is: a change to the dbt validation rules that must apply to lines already landed
bumps it, so the first run of the new code rebuilds once.
"""

from __future__ import annotations

import hashlib
import json

import duckdb

from metering_dagster.contract import Contract
from metering_dagster.schema import ensure_contract_built_table

VALIDATION_RULES = 3  # 2: before_first_period, value_out_of_range, customer_not_in_contract; 3: is_kept


def validation_fingerprint(contract: Contract) -> str:
    """Hash of what the incremental models read from the contract, and of the validation rules' version."""
    return hashlib.sha256(
        json.dumps(
            {
                "rules": VALIDATION_RULES,
                "environment": contract.environment,
                "meters": [
                    [
                        m.key,
                        m.action,
                        m.value_path,
                        m.aggregation,
                        sorted([f.field_path, sorted(f.allowed_values)] for f in m.filters),
                    ]
                    for m in sorted(contract.meters, key=lambda m: m.key)
                ],
                "customers": sorted([c.id, c.billing_anchor.isoformat(), c.interval] for c in contract.customers),
            },
            sort_keys=True,
        ).encode()
    ).hexdigest()[:16]


def contract_changed_since_build(con: duckdb.DuckDBPyConnection, contract: Contract) -> bool:
    """True when the models were last built with another contract (or never recorded): rebuild them all."""
    ensure_contract_built_table(con)
    built = con.execute("select fingerprint from ops.dbt_contract_built").fetchall()
    return built != [(validation_fingerprint(contract),)]


def record_build(con: duckdb.DuckDBPyConnection, contract: Contract) -> None:
    """After a dbt build that succeeded: the models now follow this contract."""
    ensure_contract_built_table(con)
    con.execute("begin transaction")
    try:
        con.execute("delete from ops.dbt_contract_built")
        con.execute("insert into ops.dbt_contract_built values (?, now())", [validation_fingerprint(contract)])
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise


def built_generation(con: duckdb.DuckDBPyConnection) -> str | None:
    """The contract fingerprint the models were last rebuilt for: it changes only with a full rebuild."""
    ensure_contract_built_table(con)
    row = con.execute("select fingerprint from ops.dbt_contract_built").fetchone()
    return row[0] if row else None

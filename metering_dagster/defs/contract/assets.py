"""The metering contract (metering.yml), validated and written into the warehouse."""

import dagster as dg

from metering_dagster.contract import write_contract_tables
from metering_dagster.defs.resources import MeteringResource


@dg.asset(
    group_name="contract",
    kinds={"yaml", "duckdb"},
    description="metering.yml validated (every error listed, file and field named) and written to contract.* tables.",
)
def metering_contract(context: dg.AssetExecutionContext, metering: MeteringResource) -> dg.MaterializeResult:
    contract = metering.contract()  # raises ContractError listing every problem
    with metering.warehouse() as con:
        write_contract_tables(con, contract)
    return dg.MaterializeResult(
        metadata={
            "contract_path": str(metering.settings().contract_path),
            "environment": contract.environment,
            "meters": ", ".join(m.key for m in contract.meters),
            "customers": len(contract.customers),
        }
    )


defs = dg.Definitions(assets=[metering_contract])

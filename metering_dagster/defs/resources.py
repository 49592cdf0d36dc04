"""Resources shared by every domain: the warehouse and the metering contract."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import duckdb

from metering_dagster.contract import Contract, load_contract
from metering_dagster.settings import Settings, load_settings
from metering_dagster.warehouse import WarehouseHeld, connect


class MeteringResource(dg.ConfigurableResource):
    """Paths of one deployment: the warehouse, the raw logs and the contract.

    They come from METERING_STATE_DIR / METERING_RAW_DIR / METERING_CONTRACT
    (see `metering_dagster.settings`), the same variables dbt's profile reads,
    so Python steps and dbt always agree on the warehouse.
    """

    def settings(self) -> Settings:
        return load_settings()

    def contract(self) -> Contract:
        return load_contract(self.settings().contract_path)

    @contextmanager
    def warehouse(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        # Opened per step and closed before dbt runs: DuckDB allows one writing process.
        try:
            con = connect(self.settings().warehouse_path, read_only=read_only)
        except WarehouseHeld as held:  # the step fails with the one line, not a traceback
            raise dg.Failure(description=str(held), allow_retries=False) from None
        try:
            yield con
        finally:
            con.close()

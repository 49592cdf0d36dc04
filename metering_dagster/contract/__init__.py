"""The metering contract (`metering.yml`): load + validate -> frozen dataclasses -> warehouse tables."""

from .load import load_contract
from .model import (
    PRICE_MODELS,
    Contract,
    ContractError,
    Customer,
    Meter,
    MeterFilter,
    Package,
    Price,
    Tier,
)
from .warehouse import contract_rows, write_contract_tables

__all__ = [
    "PRICE_MODELS",
    "Contract",
    "ContractError",
    "Customer",
    "Meter",
    "MeterFilter",
    "Package",
    "Price",
    "Tier",
    "contract_rows",
    "load_contract",
    "write_contract_tables",
]

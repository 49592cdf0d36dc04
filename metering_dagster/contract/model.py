"""The metering contract as frozen dataclasses. Every amount is a Decimal."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path

PRICE_MODELS = ("per_unit", "package", "graduated", "volume")
# Stripe meter formula per aggregation (docs/ARCHITECTURE.md, "Stripe mapping").
STRIPE_FORMULA = {
    "sum": "sum",
    "count": "sum",
    "max": "last",
    "last_during_period": "last",
    "last_ever": "last",
    "unique_count": "last",
}


class ContractError(ValueError):
    """The contract does not validate; `.errors` lists every problem, file and field named."""

    def __init__(self, errors: list[str]):
        self.errors = list(errors)
        super().__init__("invalid metering contract:\n  " + "\n  ".join(self.errors))


def _decimal_text(value: Decimal | None) -> str | None:
    """Canonical text of an amount (1.50 and 1.5 hash alike)."""
    if value is None:
        return None
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "0") else text


@dataclass(frozen=True)
class Package:
    size: int
    unit_amount_decimal: Decimal
    round: str  # "up" | "down"


@dataclass(frozen=True)
class Tier:
    up_to: Decimal | None  # None = inf
    unit_amount_decimal: Decimal
    flat_amount_decimal: Decimal


@dataclass(frozen=True)
class Price:
    model: str
    currency: str
    unit_amount_decimal: Decimal | None = None
    package: Package | None = None
    tiers: tuple[Tier, ...] = ()

    def canonical(self) -> dict:
        """The price definition as plain JSON-able data, amounts as canonical decimal strings."""
        return {
            "model": self.model,
            "currency": self.currency,
            "unit_amount_decimal": _decimal_text(self.unit_amount_decimal),
            "package": None
            if self.package is None
            else {
                "size": self.package.size,
                "unit_amount_decimal": _decimal_text(self.package.unit_amount_decimal),
                "round": self.package.round,
            },
            "tiers": [
                {
                    "up_to": _decimal_text(t.up_to) if t.up_to is not None else "inf",
                    "unit_amount_decimal": _decimal_text(t.unit_amount_decimal),
                    "flat_amount_decimal": _decimal_text(t.flat_amount_decimal),
                }
                for t in self.tiers
            ],
        }

    @property
    def fingerprint(self) -> str:
        """Stable hash of the price definition: a changed price gets a new fingerprint."""
        return _sha256_json(self.canonical())[:16]


@dataclass(frozen=True)
class MeterFilter:
    field_path: str
    allowed_values: tuple[str, ...]


@dataclass(frozen=True)
class Meter:
    key: str
    display_name: str
    action: str
    value_path: str | None  # None for count
    aggregation: str
    unit: str | None
    price: Price
    filters: tuple[MeterFilter, ...] = ()

    @property
    def stripe_formula(self) -> str:
        return STRIPE_FORMULA[self.aggregation]


@dataclass(frozen=True)
class Customer:
    id: str
    billing_anchor: datetime  # UTC
    interval: str = "month"


BUDGET_KINDS = ("spend", "quantity")
ON_EXCEED = ("notify", "block")
FAIL_MODES = ("open", "closed")
ANY_CUSTOMER = "*"  # a budget for every customer without one of its own under the same key


@dataclass(frozen=True)
class Budget:
    """A limit per billing period: spend (cents on our shadow invoice, all meters) or one meter's quantity."""

    key: str
    customer: str  # a customer id, or ANY_CUSTOMER
    kind: str  # "spend" | "quantity"
    meter: str | None  # quantity budgets only
    limit: Decimal  # cents (spend) or the meter's units (quantity)
    thresholds: tuple[int, ...] = (80, 100)  # percentages, ascending
    on_exceed: str = "notify"  # "notify" | "block"


@dataclass(frozen=True)
class Entitlements:
    """How the entitlements API answers when the published data is old."""

    fail_mode: str = "open"  # stale data: "open" allows, "closed" blocks
    max_staleness_seconds: int = 900


@dataclass(frozen=True)
class Contract:
    source_path: Path
    environment: str
    currency: str
    grace_period_seconds: int
    meters: tuple[Meter, ...]
    customers: tuple[Customer, ...]
    test_clock_start: datetime | None = None
    budgets: tuple[Budget, ...] = ()
    entitlements: Entitlements = Entitlements()

    def assigned_budgets(self) -> list[tuple[str, Budget]]:
        """(customer id, budget) for every customer a budget applies to: its own, else the key's "*" budget."""
        own = {(b.key, b.customer) for b in self.budgets if b.customer != ANY_CUSTOMER}
        assigned = []
        for budget in self.budgets:
            if budget.customer != ANY_CUSTOMER:
                assigned.append((budget.customer, budget))
                continue
            assigned.extend((c.id, budget) for c in self.customers if (budget.key, c.id) not in own)
        return sorted(assigned, key=lambda pair: (pair[0], pair[1].key))

    @property
    def fingerprint(self) -> dict[str, str]:
        """Price fingerprint per meter key (see Price.fingerprint)."""
        return {m.key: m.price.fingerprint for m in self.meters}

    @property
    def contract_fingerprint(self) -> str:
        """Hash of everything that changes what the pipeline computes."""
        return _sha256_json(
            {
                "environment": self.environment,
                "currency": self.currency,
                "meters": [
                    {
                        "key": m.key,
                        "action": m.action,
                        "value_path": m.value_path,
                        "aggregation": m.aggregation,
                        "filters": [[f.field_path, list(f.allowed_values)] for f in m.filters],
                        "price": m.price.canonical(),
                    }
                    for m in self.meters
                ],
                "customers": [[c.id, c.billing_anchor.isoformat(), c.interval] for c in self.customers],
            }
        )[:16]

    def meter(self, key: str) -> Meter:
        return next(m for m in self.meters if m.key == key)

    @property
    def effective_test_clock_start(self) -> datetime:
        """`test_clock_start`, defaulting to the earliest billing anchor."""
        return self.test_clock_start or min(c.billing_anchor for c in self.customers)


def _sha256_json(data) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()

"""What a handler gets: the transaction, the parameters, and the emulator's clocks and settings."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from .params import Params
from .storage import Tx


@dataclass
class Settings:
    grace_period_seconds: int = 3600
    # How long a meter event identifier stays taken, on the customer's clock; None: for the life of the state
    # file. Stripe promises "at least 24 hours", so a client must not rely on it beyond that.
    identifier_window_seconds: int | None = None


@dataclass
class Ctx:
    tx: Tx
    params: Params
    path: dict
    settings: Settings
    api_mode: str = "V1"
    request_id: str = ""
    idempotency_key: str | None = None
    wall: float = field(default_factory=time.time)

    def now(self) -> int:
        return int(self.wall)

    def clock_now(self, test_clock_id: str | None) -> int:
        """Current time for an object on a test clock (its frozen_time), else the wall clock."""
        if test_clock_id:
            clock = self.tx.get(test_clock_id, "test_helpers.test_clock")
            if clock is not None:
                return clock["frozen_time"]
        return self.now()

    def customer_now(self, customer: dict | None) -> int:
        return self.clock_now(customer.get("test_clock") if customer else None)

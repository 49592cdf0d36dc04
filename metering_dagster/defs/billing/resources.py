"""Stripe, real or the bundled emulator, as a Dagster resource."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import dagster as dg

from metering_dagster.billing.client import StripeConnection, open_stripe
from metering_dagster.contract import Contract
from metering_dagster.settings import Settings


class StripeResource(dg.ConfigurableResource):
    """With STRIPE_API_KEY set: that Stripe (STRIPE_API_BASE optional). Without: the
    bundled emulator, in-process, its state under METERING_STATE_DIR.

    The key is read from the environment inside `open_stripe` and never stored in
    run config, so it cannot reach the Dagster event log or the UI.
    """

    @contextmanager
    def connect(self, settings: Settings, contract: Contract) -> Iterator[StripeConnection]:
        with open_stripe(settings, contract) as connection:
            yield connection

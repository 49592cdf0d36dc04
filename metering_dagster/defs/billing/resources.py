"""Stripe, real or the bundled emulator, as a Dagster resource."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
from pydantic import Field

from metering_dagster.billing.client import StripeConnection, open_stripe
from metering_dagster.contract import Contract
from metering_dagster.settings import (
    Settings,
    StripeCredentials,
    metering_env,
    stripe_credentials,
)


class StripeResource(dg.ConfigurableResource):
    """With a key: that Stripe (at `api_base` when given). Without: the bundled emulator, in-process, its
    state under METERING_STATE_DIR.

    The fields are fed by `dg.EnvVar` (`stripe_resource`): Dagster resolves the variable when a step starts,
    and its UI and run config show the variable's name, never the key.
    """

    api_key: str | None = Field(default=None, description="a Stripe secret key; unset: the bundled emulator")
    api_base: str | None = Field(default=None, description="another Stripe-compatible address")

    @contextmanager
    def connect(self, settings: Settings, contract: Contract) -> Iterator[StripeConnection]:
        credentials = StripeCredentials(api_key=self.api_key, api_base=self.api_base, metering_env=metering_env())
        with open_stripe(settings, contract, credentials=credentials) as connection:
            yield connection


def stripe_resource() -> StripeResource:
    """STRIPE_API_KEY and STRIPE_API_BASE as `dg.EnvVar`s, each only when set: Dagster refuses an unset one,
    and an unset key means the bundled emulator."""
    given = stripe_credentials()
    return StripeResource(
        api_key=dg.EnvVar("STRIPE_API_KEY") if given.api_key else None,
        api_base=dg.EnvVar("STRIPE_API_BASE") if given.api_base else None,
    )

"""The Stripe resource takes its key from `dg.EnvVar`: a run uses it, the Dagster UI shows only the variable's name."""

from __future__ import annotations

import dagster as dg
from dagster._core.remote_representation.external_data import RepositorySnap
from dagster_shared.serdes import serialize_value

from metering_dagster.contract import load_contract
from metering_dagster.defs.billing.resources import StripeResource, stripe_resource
from metering_dagster.settings import load_settings

SECRET = "sk_test_51ResourceKeyNeverShown0000"


def connection_mode(resource: StripeResource) -> str:
    """The mode a Dagster step's connection takes, seen from inside a materialization."""
    modes = []

    @dg.asset
    def connects(stripe: StripeResource) -> None:
        settings = load_settings()
        with stripe.connect(settings, load_contract(settings.contract_path)) as connection:
            modes.append(connection.mode)

    assert dg.materialize([connects], resources={"stripe": resource}).success
    return modes[0]


def test_the_key_reaches_the_run_and_the_ui_shows_only_its_variable(metering_env, monkeypatch):
    monkeypatch.setenv("STRIPE_API_KEY", SECRET)
    resource = stripe_resource()
    assert connection_mode(resource) == "stripe"

    defs = dg.Definitions(assets=[], resources={"stripe": resource})
    snapshot = RepositorySnap.from_def(defs.get_repository_def())
    [shown] = [r.configured_values for r in snapshot.resources if r.name == "stripe"]
    assert shown["api_key"].name == "STRIPE_API_KEY"
    assert SECRET not in serialize_value(snapshot)
    assert SECRET not in repr(resource)


def test_without_a_key_the_run_uses_the_bundled_emulator(metering_env):
    assert connection_mode(stripe_resource()) == "emulator"

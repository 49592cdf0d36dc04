"""Key rules: live keys only for a live contract in production, never a test key for live,
and the key's text never in an exception message."""

from __future__ import annotations

from dataclasses import replace

import pytest

from metering_dagster.billing.client import StripeKeyRefused, check_key, open_stripe

LIVE = "sk_live_51SuperSecretLiveKeyValue000000000"
TEST = "sk_test_51SuperSecretTestKeyValue000000000"


@pytest.mark.parametrize(
    ("key", "environment", "metering_env", "allowed"),
    [
        (TEST, "test", None, True),
        ("rk_test_abc", "test", "production", True),
        (LIVE, "test", None, False),
        (LIVE, "test", "production", False),
        (LIVE, "live", None, False),
        (LIVE, "live", "staging", False),
        (LIVE, "live", "production", True),
        ("rk_live_restricted123", "live", "production", True),
        (TEST, "live", "production", False),
        ("pk_live_publishable", "live", "production", False),
        ("not-a-key", "test", None, False),
    ],
)
def test_key_rules(key, environment, metering_env, allowed):
    if allowed:
        check_key(key, environment, metering_env)
    else:
        with pytest.raises(StripeKeyRefused) as info:
            check_key(key, environment, metering_env)
        assert key not in str(info.value)
        if len(key) > 12:
            assert key[8:] not in str(info.value)


def test_open_stripe_refuses_without_leaking_the_key(settings, contract):
    with pytest.raises(StripeKeyRefused) as info:
        open_stripe(settings, contract, environ={"STRIPE_API_KEY": LIVE})
    assert LIVE not in str(info.value) and LIVE not in repr(info.value)

    live = replace(contract, environment="live")
    with pytest.raises(StripeKeyRefused) as info:
        open_stripe(settings, live, environ={"STRIPE_API_KEY": TEST, "METERING_ENV": "production"})
    assert TEST not in str(info.value)

    with pytest.raises(StripeKeyRefused):
        open_stripe(settings, live, environ={})  # a live contract never falls back to the emulator


def test_live_key_accepted_for_live_contract_in_production(settings, contract):
    live = replace(contract, environment="live")
    env = {"STRIPE_API_KEY": LIVE, "METERING_ENV": "production", "STRIPE_API_BASE": "http://127.0.0.1:9"}
    with open_stripe(settings, live, environ=env) as conn:
        assert conn.mode == "stripe"
        assert LIVE not in repr(conn)


def test_exceptions_leaving_the_connection_are_masked(settings, contract):
    env = {"STRIPE_API_KEY": TEST, "STRIPE_API_BASE": "http://127.0.0.1:9"}
    with pytest.raises(Exception) as info:
        with open_stripe(settings, contract, environ=env):
            raise ValueError(f"something echoed the key {TEST} back")
    assert TEST not in str(info.value)
    assert "sk_test_" in str(info.value)


def test_connection_error_text_has_no_key(settings, contract):
    """A failing request (nothing listens on port 9) raises without the key in its text."""
    import stripe

    env = {"STRIPE_API_KEY": TEST, "STRIPE_API_BASE": "http://127.0.0.1:9"}
    with pytest.raises(Exception) as info:
        with open_stripe(settings, contract, environ=env) as conn:
            conn.client._requestor._options.max_network_retries = 0
            conn.client.v1.customers.list()
    assert TEST not in str(info.value)
    assert isinstance(info.value, (stripe.APIConnectionError, RuntimeError))

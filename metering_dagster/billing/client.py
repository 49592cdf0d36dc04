"""The Stripe client: the embedded emulator by default, a real Stripe with `STRIPE_API_KEY`.

Key rules (issue 5): keys come from the environment only; a live key (`sk_live_`/`rk_live_`)
is refused unless the contract says `environment: live` and `METERING_ENV=production`; a test
key is refused for a live contract. The key never appears in a log line or an exception
message: refusals name the key's kind, never its text, and any exception leaving the
`StripeConnection` block has the key masked out of its message.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import stripe

from metering_dagster.contract.model import Contract
from metering_dagster.settings import Settings

EMULATOR_KEY = "sk_test_metering_emulator"
MAX_NETWORK_RETRIES = 4  # > 0 makes the SDK add an Idempotency-Key to POSTs; the retries are delivery.RetryPolicy's


class StripeKeyRefused(Exception):
    """The configured key does not fit the contract's environment (the key itself is never included)."""


def key_kind(key: str) -> str:
    m = re.match(r"^(sk|rk)_(test|live)_", key)
    if not m:
        return "unknown"
    return m.group(2)


def check_key(key: str, environment: str, metering_env: str | None) -> None:
    """Raise `StripeKeyRefused` when `key` may not be used for this contract environment."""
    kind = key_kind(key)
    if kind == "unknown":
        raise StripeKeyRefused(
            "STRIPE_API_KEY is not a Stripe secret or restricted key (expected sk_test_, sk_live_, rk_test_ or rk_live_)"
        )
    if kind == "live":
        if environment != "live":
            raise StripeKeyRefused(
                "STRIPE_API_KEY is a live key but the contract says environment: test; refusing to bill real customers"
            )
        if metering_env != "production":
            raise StripeKeyRefused(
                "STRIPE_API_KEY is a live key; set METERING_ENV=production to use it (currently "
                f"{metering_env or 'unset'})"
            )
    elif environment == "live":
        raise StripeKeyRefused("the contract says environment: live but STRIPE_API_KEY is a test key")


def redact(text: str, secrets: list[str]) -> str:
    for s in secrets:
        if s:
            text = text.replace(s, s[:8] + "…redacted")
    return text


@dataclass
class StripeConnection:
    """A StripeClient and, in emulator mode, the emulator serving it. Use as a context manager."""

    client: stripe.StripeClient
    mode: str  # "emulator" | "stripe"
    environment: str
    server: Any = None
    _secrets: list[str] = field(default_factory=list, repr=False)

    @property
    def is_emulator(self) -> bool:
        return self.mode == "emulator"

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def __enter__(self) -> StripeConnection:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()
        if exc is not None and self._secrets:
            message = str(exc)
            clean = redact(message, self._secrets)
            if clean != message:
                raise RuntimeError(f"{exc_type.__name__}: {clean}") from None

    def __repr__(self) -> str:  # never show the client's options
        return f"StripeConnection(mode={self.mode!r}, environment={self.environment!r})"


def _client(api_key: str, base: str | None) -> stripe.StripeClient:
    from metering_dagster.billing.delivery import RetryingRequestsClient

    kwargs: dict[str, Any] = {"max_network_retries": MAX_NETWORK_RETRIES, "http_client": RetryingRequestsClient()}
    if base:
        base = base.rstrip("/")
        kwargs["base_addresses"] = {"api": base, "meter_events": base}
    return stripe.StripeClient(api_key, **kwargs)


def open_stripe(settings: Settings, contract: Contract, environ: Mapping[str, str] | None = None) -> StripeConnection:
    """Connect to Stripe as the environment says.

    No `STRIPE_API_KEY`: start the bundled emulator in-process on a free port, its state at
    `settings.emulator_state_path`, with the contract's grace period. With `STRIPE_API_KEY`
    (and optionally `STRIPE_API_BASE`, used for both the API and the meter event stream):
    that Stripe, after the key checks above.
    """
    env = os.environ if environ is None else environ
    key = env.get("STRIPE_API_KEY") or ""
    if not key:
        if contract.environment == "live":
            raise StripeKeyRefused("the contract says environment: live but STRIPE_API_KEY is not set")
        from stripe_emulator import EmulatorServer

        settings.emulator_state_path.parent.mkdir(parents=True, exist_ok=True)
        server = EmulatorServer(
            settings.emulator_state_path, port=0, grace_period_seconds=contract.grace_period_seconds
        )
        server.start()
        try:
            client = _client(EMULATOR_KEY, server.url)
        except BaseException:
            server.stop()
            raise
        return StripeConnection(client=client, mode="emulator", environment=contract.environment, server=server)
    check_key(key, contract.environment, env.get("METERING_ENV"))
    client = _client(key, env.get("STRIPE_API_BASE"))
    return StripeConnection(client=client, mode="stripe", environment=contract.environment, _secrets=[key])

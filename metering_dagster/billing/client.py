"""The Stripe client: the embedded emulator by default, a real Stripe with `STRIPE_API_KEY`.

Key rules: keys come from the environment only (read by settings.stripe_credentials); a live key (`sk_live_`/`rk_live_`)
is refused unless the contract says `environment: live` and `METERING_ENV=production`; a test
key is refused for a live contract. A key with any character other than a letter, a digit or
`_` is refused before it is used (a `.env` file with Windows line endings leaves a carriage
return at its end, and the HTTP library then puts the whole `Bearer sk_…` header in its error).

The key never appears in a log line, an exception or a stored error: refusals name the key's
kind and the problem, never its text; every exception and every error body leaving the SDK's
HTTP client has the key masked out in every form (as written, escaped as Python or JSON would
print it, its long pieces, anything shaped like a Stripe key) and loses the chain of causes that
carried it (`_KeyScrubbingClient`), before the SDK builds, logs or raises anything from it; and
any exception leaving the `StripeConnection` block is masked the same way.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import stripe

from metering_dagster.billing.retry import RetryingRequestsClient
from metering_dagster.contract.model import Contract
from metering_dagster.settings import Settings, StripeCredentials, stripe_credentials

EMULATOR_KEY = "sk_test_metering_emulator"
MAX_NETWORK_RETRIES = 4  # > 0 makes the SDK add an Idempotency-Key to POSTs; the retries are delivery.RetryPolicy's


class StripeKeyRefused(Exception):
    """The configured key does not fit the contract's environment (the key itself is never included)."""


def key_kind(key: str) -> str:
    m = re.match(r"^(sk|rk)_(test|live)_", key)
    if not m:
        return "unknown"
    return m.group(2)


_CHARACTER_NAMES = {
    "\r": "a carriage return (\\r)",
    "\n": "a line feed (\\n)",
    "\t": "a tab (\\t)",
    " ": "a space",
    "\x00": "a NUL byte",
}


def _key_character_problem(key: str) -> str | None:
    """What is wrong with the key's characters, naming the character and where, never the key."""
    for position, ch in enumerate(key, start=1):
        if not (ch.isascii() and (ch.isalnum() or ch == "_")):
            name = _CHARACTER_NAMES.get(ch, f"the character U+{ord(ch):04X}")
            where = "at the end" if position == len(key) else "at the start" if position == 1 else "inside"
            return (
                f"STRIPE_API_KEY has {name} {where} (character {position} of {len(key)}); a Stripe key has only "
                "letters, digits and _ (a .env file saved with Windows line endings leaves a carriage return)"
            )
    return None


def check_key(key: str, environment: str, metering_env: str | None) -> None:
    """Raise `StripeKeyRefused` when `key` may not be used for this contract environment."""
    problem = _key_character_problem(key)
    if problem:
        raise StripeKeyRefused(problem)
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


_STRIPE_KEY_SHAPE = re.compile(r"\b([sr]k_(?:test|live)_)[A-Za-z0-9]{6,}")
_MIN_PIECE = 8  # a shorter piece of a key (e.g. "sk_test") tells nothing and is left alone


def _secret_forms(secret: str) -> list[str]:
    """The ways a secret can appear in a message: as is, escaped as Python's repr or JSON print it, its pieces."""
    forms = {secret, repr(secret)[1:-1], json.dumps(secret)[1:-1], secret.encode("unicode_escape").decode("ascii")}
    forms.update(piece for piece in re.split(r"[^A-Za-z0-9_]+", secret) if len(piece) >= _MIN_PIECE)
    return sorted((f for f in forms if f), key=len, reverse=True)  # longest first: a piece never splits a whole


def redact(text: str, secrets: list[str]) -> str:
    """`text` with every form of each secret, and anything shaped like a Stripe key, masked."""
    for secret in secrets:
        for form in _secret_forms(secret) if secret else ():
            text = text.replace(form, form[:8] + "…redacted")
    return _STRIPE_KEY_SHAPE.sub(r"\1…redacted", text)


def _redact_data(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, bytes):
        return redact(value.decode("utf-8", "surrogateescape"), secrets).encode("utf-8", "surrogateescape")
    if isinstance(value, dict):
        return {k: _redact_data(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_data(v, secrets) for v in value]
    return value


def scrub_exception(exc: BaseException, secrets: list[str]) -> BaseException:
    """Mask the secrets in `exc` (message, args, a Stripe error's body and error object), in place.

    Its causes are dropped when one of them mentioned a secret: such an exception may keep the
    request itself (requests' `InvalidHeader.request` holds the Authorization header), and what
    the cause said is in `exc`'s own message already.
    """
    chain, cause = [], exc
    while cause is not None and all(cause is not c for c in chain):
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    leaked = False
    for member in chain:
        text = f"{member}"
        clean = redact(text, secrets)
        leaked = leaked or (member is not exc and clean != text)
        member.args = tuple(_redact_data(a, secrets) for a in member.args)
        if isinstance(member, stripe.StripeError):
            member._message = _redact_data(member._message, secrets)
            member.http_body = _redact_data(member.http_body, secrets)
            member.json_body = _redact_data(member.json_body, secrets)
            if member.error is not None and isinstance(member.error.get("message"), str):
                member.error["message"] = redact(member.error["message"], secrets)
    if leaked:
        exc.__cause__, exc.__context__, exc.__suppress_context__ = None, None, True
    return exc


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
            scrub_exception(exc, self._secrets)
            text = str(exc)
            if redact(text, self._secrets) != text:  # its text does not come from its args: replaced
                raise RuntimeError(f"{exc_type.__name__}: {redact(text, self._secrets)}") from None

    def __repr__(self) -> str:  # never show the client's options
        return f"StripeConnection(mode={self.mode!r}, environment={self.environment!r})"


def _scrubbing_client(secrets: list[str]):
    """The SDK's HTTP client (with our retries) whose exceptions and error bodies never carry a secret."""

    class _KeyScrubbingClient(RetryingRequestsClient):
        def request_with_retries(self, *args, **kwargs):
            try:
                content, status, headers = super().request_with_retries(*args, **kwargs)
            except Exception as exc:
                scrub_exception(exc, secrets)
                raise
            return (_redact_data(content, secrets) if status >= 400 else content), status, headers

        def request_stream_with_retries(self, *args, **kwargs):
            try:
                return super().request_stream_with_retries(*args, **kwargs)
            except Exception as exc:
                scrub_exception(exc, secrets)
                raise

    return _KeyScrubbingClient()


def _client(api_key: str, base: str | None) -> stripe.StripeClient:
    kwargs: dict[str, Any] = {"max_network_retries": MAX_NETWORK_RETRIES, "http_client": _scrubbing_client([api_key])}
    if base:
        base = base.rstrip("/")
        kwargs["base_addresses"] = {"api": base, "meter_events": base}
    return stripe.StripeClient(api_key, **kwargs)


def open_stripe(
    settings: Settings,
    contract: Contract,
    environ: Mapping[str, str] | None = None,
    credentials: StripeCredentials | None = None,
) -> StripeConnection:
    """Connect to Stripe as `credentials` say (by default the environment's, or `environ`'s).

    No `STRIPE_API_KEY`: start the bundled emulator in-process on a free port, its state at
    `settings.emulator_state_path`, with the contract's grace period. With `STRIPE_API_KEY`
    (and optionally `STRIPE_API_BASE`, used for both the API and the meter event stream):
    that Stripe, after the key checks above.
    """
    credentials = credentials or stripe_credentials(environ)
    key = credentials.api_key or ""
    if not key:
        if contract.environment == "live":
            raise StripeKeyRefused("the contract says environment: live but STRIPE_API_KEY is not set")
        from stripe_emulator import EmulatorServer  # here for start-up time: only when no Stripe is configured

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
    check_key(key, contract.environment, credentials.metering_env)
    client = _client(key, credentials.api_base)
    return StripeConnection(client=client, mode="stripe", environment=contract.environment, _secrets=[key])

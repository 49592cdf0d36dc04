"""Stripe could not be reached or refused the key: one line saying so and what to check, never a traceback.

Every command that talks to Stripe (`run`, `clock advance`, `explain`, `corrections preview`) ends with this line
instead of the SDK's exception. The line names the address tried and the network's reason; it never carries the
key (Stripe's own message for a bad key quotes part of it, so that message is not repeated).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import stripe

from metering_dagster.billing.client import StripeKeyRefused
from metering_dagster.settings import stripe_credentials

STRIPE_DEFAULT_BASE = "https://api.stripe.com"

# The network's reason, as requests/urllib3 word it inside the SDK's message, in plain words.
_NETWORK_REASONS = (
    (r"Connection refused", "connection refused"),
    (
        r"Name or service not known|nodename nor servname|getaddrinfo failed|Temporary failure in name",
        "the host name does not resolve",
    ),
    (r"timed out|timeout", "no answer in time"),
    (r"Network is unreachable|No route to host", "no route to the host"),
    (r"SSL|certificate", "the TLS handshake failed"),
    (r"Connection reset|RemoteDisconnected|Connection aborted", "the connection was dropped"),
)


def stripe_base(environ: Mapping[str, str] | None = None) -> str:
    """The Stripe address the commands use: `STRIPE_API_BASE`, else Stripe's, else the bundled emulator."""
    credentials = stripe_credentials(environ)
    if credentials.api_base:
        return credentials.api_base.rstrip("/")
    return STRIPE_DEFAULT_BASE if credentials.api_key else "the bundled Stripe emulator"


def _network_reason(message: str) -> str:
    for pattern, reason in _NETWORK_REASONS:
        if re.search(pattern, message, re.IGNORECASE):
            return reason
    return "no answer"


def stripe_problem_line(kind: str, message: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The one line for a Stripe error of class name `kind` (as `APIConnectionError`, also as a Dagster step's
    error names it) and text `message`; None when it is not a connection or key error."""
    base = stripe_base(environ)
    if kind.endswith("APIConnectionError"):
        return (
            f"Stripe could not be reached at {base} ({_network_reason(message)}, after retrying): check the "
            "network, a proxy or firewall, and STRIPE_API_BASE (unset: Stripe itself); then run the command again"
        )
    if kind.endswith("AuthenticationError"):
        return (
            f"Stripe at {base} refused the key (authentication failed): check that STRIPE_API_KEY is a current "
            "secret key of this account and mode (test or live); the key is not shown"
        )
    if kind == "StripePermissionError":
        return (
            f"Stripe at {base} refused a request with this key (permission denied): a restricted key needs "
            "write access to Billing (meters, meter events, customers, subscriptions, invoices, test clocks)"
        )
    if kind.endswith("StripeKeyRefused"):  # already says what is wrong, never the key
        text = message.strip().splitlines()[0] if message.strip() else ""
        return re.sub(r"^[\w.]*StripeKeyRefused: ", "", text) or None
    return None


def stripe_problem(error: BaseException, environ: Mapping[str, str] | None = None) -> str | None:
    """`stripe_problem_line` for a raised exception, or None when it is not a connection or key error."""
    if isinstance(error, stripe.PermissionError):  # its class name alone is Python's PermissionError too
        return stripe_problem_line("StripePermissionError", str(error), environ)
    if isinstance(error, (stripe.APIConnectionError, stripe.AuthenticationError, StripeKeyRefused)):
        return stripe_problem_line(type(error).__name__, str(error), environ)
    return None

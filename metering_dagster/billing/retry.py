"""How every request to Stripe is retried: one policy, one place, counted.

`RetryPolicy` is exponential backoff with full jitter: before retry n (1-based) wait a uniform
random time in [0, min(cap, base · 2^(n-1))]. A `Retry-After` header (seconds) sets a floor on
that wait (capped at `max_retry_after`). `Stripe-Should-Retry: false` stops at once,
`Stripe-Should-Retry: true` retries whatever the status. Without that header: connection errors
(including an answer that never came), 409, 429 and 5xx are retried, anything else is final.

`RetryingRequestsClient` is the stripe SDK's HTTP client with this policy in place of the SDK's
own (which does not retry 429 and ignores `Retry-After`). Every Stripe call of the pipeline
goes through it (see `client.py`). A POST keeps the Idempotency-Key the SDK gave it on every
attempt, so Stripe applies a retried request once.

The numbers (requests tried, faults met, retries, gave up) are kept in `STATS` for the run's
metadata and the soak test.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import stripe

RETRYABLE_STATUS = frozenset({409, 429})


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6  # the retry budget: attempts per request, the first included
    base_seconds: float = 0.25
    cap_seconds: float = 8.0
    max_retry_after: float = 60.0

    def backoff(self, retry: int, retry_after: float | None = None, rng: Callable[[], float] = random.random) -> float:
        """Seconds to wait before retry `retry` (1-based): full jitter, at least Retry-After."""
        ceiling = min(self.cap_seconds, self.base_seconds * (2 ** (retry - 1)))
        wait = ceiling * rng()
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_retry_after))
        return wait


DEFAULT_POLICY = RetryPolicy()


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    if not headers:
        return None
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def retry_after_seconds(headers: Mapping[str, str] | None) -> float | None:
    value = _header(headers, "retry-after")
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None


def should_retry(status: int | None, headers: Mapping[str, str] | None, connection_error: bool) -> bool:
    """Stripe's rules: the stripe-should-retry header decides when present."""
    if connection_error:
        return True
    hint = _header(headers, "stripe-should-retry")
    if hint == "false":
        return False
    if hint == "true":
        return True
    return status is not None and (status in RETRYABLE_STATUS or status >= 500)


@dataclass
class DeliveryStats:
    requests: int = 0  # HTTP requests tried
    faults: dict[str, int] = field(default_factory=dict)  # "429", "500", "connection", ...
    retries: int = 0
    gave_up: int = 0  # requests that still failed after the budget (or were told not to retry)
    waited_seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def fault(self, kind: str) -> None:
        with self._lock:
            self.faults[kind] = self.faults.get(kind, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests_tried": self.requests,
            "faults_met": sum(self.faults.values()),
            "faults_by_kind": dict(sorted(self.faults.items())),
            "retries": self.retries,
            "gave_up": self.gave_up,
            "retry_wait_seconds": round(self.waited_seconds, 3),
        }

    def reset(self) -> None:
        with self._lock:
            self.requests, self.retries, self.gave_up, self.waited_seconds = 0, 0, 0, 0.0
            self.faults = {}


STATS = DeliveryStats()


class RetryingRequestsClient(stripe.RequestsClient):
    """The SDK's requests-based client, retrying with `RetryPolicy` (see module doc)."""

    def __init__(
        self,
        policy: RetryPolicy | None = None,
        stats: DeliveryStats = STATS,
        sleep: Callable[[float], None] = time.sleep,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self._policy = policy
        self.stats = stats
        self._sleep = sleep

    @property
    def policy(self) -> RetryPolicy:
        return self._policy or DEFAULT_POLICY

    def _request_with_retries_internal(
        self, method, url, headers, post_data, is_streaming, max_network_retries, *, _usage=None
    ):
        # max_network_retries = 0 on a request asks for a single attempt (the caller retries).
        attempts = self.policy.max_attempts if max_network_retries is None or max_network_retries > 0 else 1
        attempt = 0
        while True:
            attempt += 1
            with self.stats._lock:
                self.stats.requests += 1
            try:
                if is_streaming:
                    response = self.request_stream(method, url, headers, post_data)
                else:
                    response = self.request(method, url, headers, post_data)
                error = None
            except stripe.APIConnectionError as exc:
                response, error = None, exc
            status = response[1] if response is not None else None
            rheaders = response[2] if response is not None else None
            failed = error is not None or (status is not None and status >= 400)
            if failed and error is None and status is not None and (status in RETRYABLE_STATUS or status >= 500):
                self.stats.fault(str(status))
            elif error is not None:
                self.stats.fault("connection")
            if not failed:
                return response
            if attempt >= attempts or not should_retry(status, rheaders, error is not None):
                if error is not None or status in RETRYABLE_STATUS or (status or 0) >= 500:
                    with self.stats._lock:
                        self.stats.gave_up += 1
                if error is not None:
                    raise error
                return response
            wait = self.policy.backoff(attempt, retry_after_seconds(rheaders))
            with self.stats._lock:
                self.stats.retries += 1
                self.stats.waited_seconds += wait
            self._sleep(wait)

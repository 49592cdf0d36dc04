"""Deliberate misbehaviour for reliability tests: rate limit, random 500s, drops after commit, latency."""

from __future__ import annotations

import random
import threading
import time


class Faults:
    def __init__(
        self,
        rate_limit: float | None = None,
        fail_rate: float = 0.0,
        drop_after_commit_rate: float = 0.0,
        latency_ms: float = 0,
        seed: int | None = None,
    ):
        self.rate_limit = rate_limit
        self.fail_rate = fail_rate
        self.drop_after_commit_rate = drop_after_commit_rate
        self.latency_ms = latency_ms
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._window_start = 0.0
        self._window_count = 0

    def _draw(self) -> float:
        with self._lock:
            return self._rng.random()

    def sleep(self):
        if self.latency_ms:
            time.sleep(self.latency_ms / 1000.0)

    def over_rate_limit(self) -> bool:
        """Fixed one-second windows: past `rate_limit` requests in the current second, refuse."""
        if not self.rate_limit:
            return False
        with self._lock:
            now = time.monotonic()
            if now - self._window_start >= 1.0:
                self._window_start, self._window_count = now, 0
            self._window_count += 1
            return self._window_count > self.rate_limit

    def should_fail(self) -> bool:
        return self.fail_rate > 0 and self._draw() < self.fail_rate

    def should_drop(self) -> bool:
        return self.drop_after_commit_rate > 0 and self._draw() < self.drop_after_commit_rate

"""Budget alerts sent as signed webhooks, following Standard Webhooks (https://www.standardwebhooks.com).

Every `pending` alert of `ops.budget_alerts` is POSTed to METERING_WEBHOOK_URL, oldest first (80 % before 100 %),
its stored JSON body as it is, with the headers

- `webhook-id`: the alert's id (evaluate.py), the same on every attempt and every run;
- `webhook-timestamp`: the unix seconds of this attempt (a receiver refuses one far from its clock);
- `webhook-signature`: `v1,` + base64 of HMAC-SHA256 of `{webhook-id}.{webhook-timestamp}.{body}`, keyed with
  the secret (METERING_WEBHOOK_SECRET, base64 after an optional `whsec_` prefix).

Delivery is at least once, under one id:

- A 2xx answer marks the alert `delivered`. Any other answer (redirects are not followed), a refused connection or
  a timeout is tried again after the backoff, then twice it, four times it ... up to the policy's attempts.
- An alert that fails every attempt of a run stays `pending`, with its attempts and last error, and gets a row in
  `ops.budget_alert_dead_letters`; the next run sends it again with the same webhook-id and body.
- An alert the receiver refuses does not hold the others back. When the receiver cannot be reached at all, or
  refused two alerts in a row, the run stops after that alert and leaves the rest `pending` for the next run
  (the result says so) rather than spend every alert's retries on a receiver that is down.
- Crash safety: each attempt is recorded (`attempts`, `last_attempt_at`) before the request is sent, `delivered`
  after the 2xx. A run killed in between, after the receiver got the alert and before it was recorded, leaves it
  `pending`: the next run sends it again, with the same webhook-id and the same body. A receiver that dedupes on
  webhook-id, as Standard Webhooks asks of receivers, acts on it once. An alert never gets a second id.
- The secret signs and is never logged, stored nor put in an error. Messages name the receiver by its scheme and
  host only: its URL may carry a token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import duckdb

from metering_dagster.display import count
from metering_dagster.progress import report
from metering_dagster.schema import ensure_budget_alert_tables
from metering_dagster.settings import SettingsError, WebhookSettings, webhook_receiver_problems, webhook_secret_key

SIGNATURE_VERSION = "v1"
# stop sending when this many alerts in a row failed every attempt: the receiver is down, not one alert refused
EXHAUSTED_IN_A_ROW_STOP = 2
RESPONSE_TEXT_KEPT = 200  # characters of a refusal's body kept in last_error
RESPONSE_BYTES_READ = 65536  # of an accepted answer: its body means nothing, a huge one is not waited for


@dataclass(frozen=True)
class DeliveryPolicy:
    """Attempts of one alert within a run, and the delay before the first retry (doubled at each retry)."""

    attempts: int = 4
    backoff_seconds: float = 1.0
    timeout_seconds: float = 15.0  # Standard Webhooks recommends 15 to 30 s for a receiver to answer

    @classmethod
    def from_settings(cls, settings: WebhookSettings) -> DeliveryPolicy:
        return cls(attempts=settings.attempts, backoff_seconds=settings.backoff_seconds)

    def delay(self, retry: int) -> float:
        """Seconds before retry `retry` (1-based): 1 s, 2 s, 4 s ... with the default backoff."""
        return self.backoff_seconds * 2 ** (retry - 1)


def sign(secret: str, msg_id: str, timestamp: int, body: str | bytes) -> str:
    """The `webhook-signature` value of one attempt: `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`."""
    key = webhook_secret_key(secret)
    content = f"{msg_id}.{timestamp}.".encode() + (body.encode() if isinstance(body, str) else body)
    return f"{SIGNATURE_VERSION}," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()


def headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
    }


def receiver_name(url: str) -> str:
    """`https://hooks.example.com:8443`: the URL without its path and query, which may carry a token."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}"


def check_receiver(url: str, secret: str | None) -> None:
    """A clear SettingsError for a URL that is not http(s), or a missing or malformed secret (neither quoted)."""
    problems = webhook_receiver_problems(url or "", secret)
    if problems:
        raise SettingsError(problems)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is a failed attempt (Standard Webhooks): the URL should be updated, not followed."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


@dataclass(frozen=True)
class _Answer:
    ok: bool
    error: str | None = None
    reached: bool = True  # the receiver answered (False: refused connection, timeout, no such host)


def _post(url: str, body: bytes, request_headers: dict[str, str], timeout: float) -> _Answer:
    request = urllib.request.Request(url, data=body, headers=request_headers, method="POST")
    opener = urllib.request.build_opener(_NoRedirects)
    try:
        with opener.open(request, timeout=timeout) as response:
            response.read(RESPONSE_BYTES_READ)
            status = response.status
    except urllib.error.HTTPError as error:
        with error:
            text = error.read(RESPONSE_TEXT_KEPT).decode("utf-8", "replace").strip()
        return _Answer(ok=False, error=f"HTTP {error.code}" + (f": {' '.join(text.split())}" if text else ""))
    except TimeoutError:
        return _Answer(ok=False, error=f"no answer within {timeout:g} s", reached=False)
    except urllib.error.URLError as error:
        reason = error.reason
        if isinstance(reason, TimeoutError):
            return _Answer(ok=False, error=f"no answer within {timeout:g} s", reached=False)
        return _Answer(ok=False, error=f"cannot reach the receiver: {reason}", reached=False)
    except (OSError, http.client.HTTPException) as error:
        return _Answer(ok=False, error=f"connection failed: {type(error).__name__}: {error}", reached=False)
    if 200 <= status < 300:
        return _Answer(ok=True)
    return _Answer(ok=False, error=f"HTTP {status}")


@dataclass
class DeliveryResult:
    receiver: str
    delivered: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (alert id, last error): dead-lettered this run
    not_tried: list[str] = field(default_factory=list)  # left pending when the run stopped early
    stopped_because: str | None = None

    def summary(self) -> str:
        text = f"budget alerts to {self.receiver}: {len(self.delivered)} delivered"
        if self.failed:
            text += f", {len(self.failed)} failed every attempt (pending, dead letter recorded; last error: "
            text += f"{self.failed[-1][1]})"
        if self.stopped_because:
            text += f"; stopped early, {count(len(self.not_tried), 'alert')} left pending: {self.stopped_because}"
        return text

    def metadata(self) -> dict[str, object]:
        return {
            "receiver": self.receiver,
            "delivered": len(self.delivered),
            "failed": len(self.failed),
            "left_pending": len(self.not_tried),
            "stopped_because": self.stopped_because or "-",
        }


def pending_alerts(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    """(alert id, payload) of every pending alert, in creation order."""
    ensure_budget_alert_tables(con)
    return con.execute(
        "SELECT alert_id, payload FROM ops.budget_alerts WHERE status = 'pending' ORDER BY creation_order"
    ).fetchall()


def _record_attempt(con: duckdb.DuckDBPyConnection, alert_id: str, at: datetime) -> None:
    con.execute(
        """UPDATE ops.budget_alerts SET attempts = attempts + 1, last_attempt_at = ?, next_attempt_at = NULL
           WHERE alert_id = ?""",
        [at, alert_id],
    )


def _record_delivered(con: duckdb.DuckDBPyConnection, alert_id: str, at: datetime) -> None:
    con.execute(
        """UPDATE ops.budget_alerts SET status = 'delivered', delivered_at = ?, last_error = NULL,
               next_attempt_at = NULL
           WHERE alert_id = ?""",
        [at, alert_id],
    )


def _record_failure(con: duckdb.DuckDBPyConnection, alert_id: str, error: str, retry_at: datetime | None) -> None:
    con.execute(
        "UPDATE ops.budget_alerts SET last_error = ?, next_attempt_at = ? WHERE alert_id = ?",
        [error[:1000], retry_at, alert_id],
    )


def _record_dead_letter(con: duckdb.DuckDBPyConnection, alert_id: str, error: str, at: datetime) -> None:
    con.execute(
        """INSERT INTO ops.budget_alert_dead_letters (alert_id, failed_at, attempts, last_error)
           SELECT alert_id, ?, attempts, ? FROM ops.budget_alerts WHERE alert_id = ?
           ON CONFLICT (alert_id) DO UPDATE SET failed_at = excluded.failed_at, attempts = excluded.attempts,
               last_error = excluded.last_error""",
        [at, error[:1000], alert_id],
    )


def _deliver_one(
    con: duckdb.DuckDBPyConnection,
    url: str,
    secret: str,
    alert_id: str,
    payload: str,
    policy: DeliveryPolicy,
    sleep: Callable[[float], None],
) -> _Answer:
    body = payload.encode()
    answer = _Answer(ok=False, error="not tried")
    for attempt in range(1, policy.attempts + 1):
        started = datetime.now(UTC)
        _record_attempt(con, alert_id, started)  # before sending: a crash after this resends the same id
        answer = _post(url, body, headers(secret, alert_id, int(started.timestamp()), body), policy.timeout_seconds)
        if answer.ok:
            _record_delivered(con, alert_id, datetime.now(UTC))
            return answer
        wait = policy.delay(attempt) if attempt < policy.attempts else None
        retry_at = datetime.now(UTC) + timedelta(seconds=wait) if wait is not None else None
        _record_failure(con, alert_id, answer.error or "failed", retry_at)
        if wait is not None:
            sleep(wait)
    _record_dead_letter(con, alert_id, answer.error or "failed", datetime.now(UTC))
    return answer


def deliver_pending(
    con: duckdb.DuckDBPyConnection,
    url: str,
    secret: str,
    *,
    policy: DeliveryPolicy,
    sleep: Callable[[float], None] = time.sleep,
) -> DeliveryResult:
    """Send every pending alert to `url` (module doc), oldest first; returns what was delivered, what failed every
    attempt and what was left pending when the run stopped early."""
    check_receiver(url, secret)
    pending = pending_alerts(con)
    result = DeliveryResult(receiver=receiver_name(url))
    exhausted_in_a_row = 0
    for index, (alert_id, payload) in enumerate(pending):
        report(f"budget alerts: sending {index + 1} of {len(pending)} to {result.receiver}")
        answer = _deliver_one(con, url, secret, alert_id, payload, policy, sleep)
        if answer.ok:
            result.delivered.append(alert_id)
            exhausted_in_a_row = 0
            continue
        result.failed.append((alert_id, answer.error or "failed"))
        exhausted_in_a_row += 1
        if not answer.reached or exhausted_in_a_row >= EXHAUSTED_IN_A_ROW_STOP:
            result.not_tried = [a for a, _ in pending[index + 1 :]]
            result.stopped_because = (
                f"the receiver cannot be reached ({answer.error})"
                if not answer.reached
                else f"the receiver refused {exhausted_in_a_row} alerts in a row ({answer.error})"
            )
            break
    report(result.summary(), done=True)
    return result


def undelivered_dead_letters(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    """Alerts still pending after a run gave up on them: (customer, budget, alert type, threshold, period start,
    alert id, attempts, failed at, last error), oldest first."""
    ensure_budget_alert_tables(con)
    return con.execute(
        """SELECT a.customer_id, a.budget_key, a.alert_type, a.threshold_percent, a.period_start, d.alert_id,
                  d.attempts, d.failed_at, d.last_error
           FROM ops.budget_alert_dead_letters d JOIN ops.budget_alerts a USING (alert_id)
           WHERE a.status = 'pending'
           ORDER BY a.creation_order"""
    ).fetchall()

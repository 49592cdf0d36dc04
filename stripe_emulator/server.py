"""HTTP front: authentication, faults, parameter decoding, idempotency, one transaction per request.

`App.handle` does the work and knows nothing of sockets; `EmulatorServer` serves it over HTTP/1.1 with
one thread per connection (http.server), in-process or from `python -m stripe_emulator`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from .context import Ctx, Settings
from .errors import StripeError
from .faults import Faults
from .params import Params, decode_form
from .resources import build_router
from .resources.meter_events import session_valid
from .storage import Store

IDEMPOTENCY_TTL = 24 * 3600


@dataclass
class Response:
    status: int
    body: bytes
    headers: dict = field(default_factory=dict)
    drop: bool = False


def _public(value):
    """Drop internal fields (keys starting with `_`) before an object leaves the emulator.

    A `metadata` map is the user's (string keys and values, any name, `_x` included): returned as stored.
    """
    # Scalars are copied without a call: a page of 100 invoices holds some 150,000 values.
    if isinstance(value, dict):
        return {
            k: v if k == "metadata" or not isinstance(v, (dict, list)) else _public(v)
            for k, v in value.items()
            if k[:1] != "_"
        }
    if isinstance(value, list):
        return [_public(v) if isinstance(v, (dict, list)) else v for v in value]
    return value


class ServingTime:
    """CPU seconds the emulators of this process spent answering requests (each handler thread's own CPU
    time): the work Stripe's servers would do. `metering bench` reports it apart from the pipeline's."""

    def __init__(self):
        self._lock = threading.Lock()
        self.cpu_seconds = 0.0
        self.requests = 0

    def add(self, seconds: float) -> None:
        with self._lock:
            self.cpu_seconds += seconds
            self.requests += 1


SERVING = ServingTime()


def _error_response(err: StripeError) -> Response:
    headers = dict(err.headers)
    if err.should_retry is not None:
        headers["Stripe-Should-Retry"] = "true" if err.should_retry else "false"
    return Response(err.status, json.dumps(err.body()).encode(), headers)


def _api_key(headers) -> str | None:
    auth = headers.get("Authorization") or ""
    if auth.startswith("Bearer "):
        return auth[7:].strip()
    if auth.startswith("Basic "):
        try:
            return base64.b64decode(auth[6:]).decode().split(":", 1)[0]
        except ValueError:
            return None
    return None


class App:
    def __init__(self, store: Store, settings: Settings, faults: Faults):
        self.store = store
        self.settings = settings
        self.faults = faults
        self.router = build_router()
        with store.transaction() as tx:
            tx.conn.execute("DELETE FROM idempotency WHERE created < ?", (int(time.time()) - IDEMPOTENCY_TTL,))

    def _authenticate(self, route, key: str | None, api_mode: str):
        if route is not None and route.auth == "session":
            if key and session_valid(self.store, key):
                return
            raise StripeError(
                401,
                "The meter event session token is missing, invalid or expired; "
                "create a new one with POST /v2/billing/meter_event_session.",
                type="temporary_session_expired"
                if key and not key.startswith(("sk_", "rk_"))
                else "invalid_request_error",
            )
        if not key:
            raise StripeError(
                401,
                "You did not provide an API key. You need to provide your API key in the "
                "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
            )
        if key.startswith(("sk_live_", "rk_live_")):
            raise StripeError(
                401, "This is the Stripe emulator: live mode keys (sk_live_...) are refused. Use any sk_test_ key."
            )
        if not key.startswith(("sk_test_", "rk_test_")):
            raise StripeError(401, f"Invalid API Key provided: {key[:12]}***")

    def handle(self, method: str, raw_path: str, body: bytes, headers) -> Response:
        request_id = "req_" + secrets.token_hex(7)
        base_headers = {
            "Request-Id": request_id,
            "Stripe-Version": headers.get("Stripe-Version") or "2026-10-28.endive",
        }
        resp = self._handle(method, raw_path, body, headers, request_id)
        resp.headers = {**base_headers, **resp.headers}
        return resp

    def _handle(self, method, raw_path, body, headers, request_id) -> Response:
        url = urlsplit(raw_path)
        path = url.path.rstrip("/") or "/"
        api_mode = "V2" if path.startswith("/v2/") else "V1"
        route, path_params = self.router.match(method, path)
        try:
            self._authenticate(route, _api_key(headers), api_mode)
            if self.faults.over_rate_limit():
                raise StripeError(
                    429,
                    "Request rate limit exceeded. You can learn more about rate limits here "
                    "https://stripe.com/docs/rate-limits.",
                    code="rate_limit",
                )
            if route is None:
                raise StripeError(
                    404,
                    f"Unrecognized request URL ({method}: {path}). Please see "
                    "https://stripe.com/docs or we can help at https://support.stripe.com/.",
                )
            if self.faults.should_fail():
                raise StripeError(
                    500, "An unknown error occurred (injected by --fail-rate).", type="api_error", should_retry=True
                )
            params = self._params(method, api_mode, url.query, body)
        except StripeError as e:
            return _error_response(e)

        idem_key = (
            headers.get("Idempotency-Key") if (method == "POST" or (api_mode == "V2" and method == "DELETE")) else None
        )
        fingerprint = hashlib.sha256(json.dumps([method, path, params], sort_keys=True).encode()).hexdigest()
        try:
            with self.store.transaction(write=route.write) as tx:
                if idem_key:
                    row = tx.conn.execute(
                        "SELECT fingerprint, status, body FROM idempotency WHERE key = ?", (idem_key,)
                    ).fetchone()
                    if row is not None:
                        if row[0] != fingerprint:
                            raise StripeError(
                                400,
                                "Keys for idempotent requests can only be used with the same parameters they "
                                f"were first used with. Try using a key other than '{idem_key}' if you meant to "
                                "execute a different request.",
                                type="idempotency_error",
                            )
                        stored = json.loads(row[2])
                        return Response(
                            row[1],
                            stored["body"].encode(),
                            {**stored["headers"], "Idempotent-Replayed": "true", "Idempotency-Key": idem_key},
                        )
                ctx = Ctx(
                    tx=tx,
                    params=Params(params),
                    path=path_params,
                    settings=self.settings,
                    api_mode=api_mode,
                    request_id=request_id,
                    idempotency_key=idem_key,
                )
                tx.conn.execute("SAVEPOINT handler")
                try:
                    status, result = route.handler(ctx)
                    resp = Response(status, json.dumps(_public(result)).encode())
                    tx.conn.execute("RELEASE handler")
                except StripeError as e:
                    tx.conn.execute("ROLLBACK TO handler")
                    tx.conn.execute("RELEASE handler")
                    resp = _error_response(e)
                if idem_key and resp.status < 500:
                    tx.conn.execute(
                        "INSERT INTO idempotency (key, fingerprint, status, body, created) VALUES (?, ?, ?, ?, ?)",
                        (
                            idem_key,
                            fingerprint,
                            resp.status,
                            json.dumps({"body": resp.body.decode(), "headers": resp.headers}),
                            int(time.time()),
                        ),
                    )
        except StripeError as e:
            return _error_response(e)
        if idem_key:
            resp.headers["Idempotency-Key"] = idem_key
        resp.drop = self.faults.should_drop()
        return resp

    @staticmethod
    def _params(method, api_mode, query, body) -> dict:
        if method in ("GET", "DELETE") or not body:
            return decode_form(query) if query else {}
        text = body.decode("utf-8")
        if api_mode == "V2":
            try:
                data = json.loads(text) if text.strip() else {}
            except ValueError:
                raise StripeError(400, "Invalid JSON body.") from None
            if not isinstance(data, dict):
                raise StripeError(400, "The request body must be a JSON object.")
            return data
        return decode_form(text)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "stripe-emulator"

    def log_message(self, format, *args):  # quiet: the emulator is a library too
        pass

    def _serve(self, method: str):
        started = time.thread_time()
        try:
            self._answer(method)
        finally:
            SERVING.add(time.thread_time() - started)

    def _answer(self, method: str):
        app: App = self.server.app  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        app.faults.sleep()
        try:
            resp = app.handle(method, self.path, body, self.headers)
        except Exception as e:  # a bug in the emulator: say so the way Stripe does
            err = StripeError(500, f"Emulator internal error: {type(e).__name__}: {e}", type="api_error")
            resp = _error_response(err)
        if resp.drop:
            self.close_connection = True
            return
        head = [
            f"HTTP/1.1 {resp.status} {self.responses.get(resp.status, ('',))[0]}",
            "Content-Type: application/json",
            f"Content-Length: {len(resp.body)}",
            *(f"{k}: {v}" for k, v in resp.headers.items()),
        ]
        self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode() + resp.body)

    def do_GET(self):
        self._serve("GET")

    def do_POST(self):
        self._serve("POST")

    def do_DELETE(self):
        self._serve("DELETE")


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256


class EmulatorServer:
    """The emulator on a loopback port, in this process (a background thread)."""

    def __init__(
        self,
        state_path,
        host: str = "127.0.0.1",
        port: int = 0,
        grace_period_seconds: int = 3600,
        rate_limit: float | None = None,
        fail_rate: float = 0.0,
        drop_after_commit_rate: float = 0.0,
        latency_ms: float = 0,
        seed: int | None = None,
        identifier_window_seconds: int | None = None,
    ):
        self.state_path = state_path
        self.host, self.port = host, port
        self.settings = Settings(
            grace_period_seconds=grace_period_seconds, identifier_window_seconds=identifier_window_seconds
        )
        self.faults = Faults(rate_limit, fail_rate, drop_after_commit_rate, latency_ms, seed)
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.store: Store | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> EmulatorServer:
        self.store = Store(self.state_path)
        self._httpd = _HTTPServer((self.host, self.port), _Handler)
        self._httpd.app = App(self.store, self.settings, self.faults)  # type: ignore[attr-defined]
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.2},
            name=f"stripe-emulator:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def serve_forever(self):
        """Blocking variant for the CLI."""
        assert self._thread is not None
        self._thread.join()

    def stop(self):
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self.store is not None:
            self.store.close()
            self.store = None

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc):
        self.stop()

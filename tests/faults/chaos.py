"""A loopback proxy in front of the Stripe emulator that adds 429s and counts what it sees.

The emulator injects 500s (`fail_rate`) and drops after commit (`drop_after_commit_rate`) itself;
the proxy answers a share of requests 429 with `Retry-After` (the emulator's own rate limit is a
threshold, not a share), can be told to fail or drop everything for a path, and counts requests
tried, faults met by kind and repeated requests (retries, recognised by their Idempotency-Key).
"""

from __future__ import annotations

import http.client
import json
import random
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


class ChaosProxy:
    def __init__(self, upstream: str, *, rate_limited_rate: float = 0.0, retry_after: str = "0.2", seed: int = 0):
        self.upstream = urlsplit(upstream)
        self.rate_limited_rate = rate_limited_rate
        self.retry_after = retry_after
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.seen_keys: set[str] = set()
        # path prefix -> [kind, how many more times (None: until removed)]; kind "500" | "429" | "drop" | "400-no-retry"
        self.force: dict[str, list] = {}
        # text anywhere in the request line or body (e.g. one customer's id) -> kind, for every such request;
        # kinds as above and "404" (Stripe's resource_missing), "garbage" (a 200 that is not the object asked for)
        self.force_containing: dict[str, str] = {}
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _any(self):
                proxy._handle(self)

            do_GET = do_POST = do_DELETE = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> ChaosProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def figures(self) -> dict[str, int]:
        with self.lock:
            c = dict(self.counts)
        return {
            "requests_tried": c.get("requests", 0),
            "faults_met": c.get("429", 0) + c.get("500", 0) + c.get("drop", 0),
            "faults_429": c.get("429", 0),
            "faults_500": c.get("500", 0),
            "faults_drop_after_commit": c.get("drop", 0),
            "retries": c.get("retries", 0),
        }

    def requests_to(self, path: str) -> int:
        with self.lock:
            return self.counts[f"path {path}"]

    def _send(self, h: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str]) -> None:
        h.send_response(status)
        for k, v in headers.items():
            if k.lower() not in ("content-length", "connection", "transfer-encoding"):
                h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        key = h.headers.get("Idempotency-Key")
        path = urlsplit(h.path).path
        with self.lock:
            self.counts["requests"] += 1
            self.counts[f"path {path}"] += 1
            if key and key in self.seen_keys:
                self.counts["retries"] += 1
            if key:
                self.seen_keys.add(key)
            forced = None
            for prefix, rule in list(self.force.items()):
                if path.startswith(prefix):
                    forced = rule[0]
                    if rule[1] is not None:
                        rule[1] -= 1
                        if rule[1] <= 0:
                            del self.force[prefix]
                    break
            if forced is None:
                request_text = h.path + " " + body.decode("utf-8", "replace")
                forced = next((kind for text, kind in self.force_containing.items() if text in request_text), None)
            limited = forced is None and self.rng.random() < self.rate_limited_rate
        if forced == "429" or limited:
            with self.lock:
                self.counts["429"] += 1
            err = {
                "error": {
                    "type": "invalid_request_error",
                    "code": "rate_limit",
                    "message": "Request rate limit exceeded (injected by the chaos proxy).",
                }
            }
            return self._send(
                h, 429, json.dumps(err).encode(), {"Content-Type": "application/json", "Retry-After": self.retry_after}
            )
        if forced == "500":
            with self.lock:
                self.counts["500"] += 1
            err = {"error": {"type": "api_error", "message": "Injected 500."}}
            return self._send(
                h, 500, json.dumps(err).encode(), {"Content-Type": "application/json", "Stripe-Should-Retry": "true"}
            )
        if forced == "404":
            err = {
                "error": {
                    "type": "invalid_request_error",
                    "code": "resource_missing",
                    "message": "No such invoice (injected by the chaos proxy).",
                }
            }
            return self._send(h, 404, json.dumps(err).encode(), {"Content-Type": "application/json"})
        if forced == "garbage":
            return self._send(
                h,
                200,
                json.dumps({"object": "list", "data": [{"id": None}], "has_more": True, "url": h.path}).encode(),
                {"Content-Type": "application/json"},
            )
        if forced == "400-no-retry":
            err = {"error": {"type": "invalid_request_error", "message": "Injected refusal."}}
            return self._send(
                h, 400, json.dumps(err).encode(), {"Content-Type": "application/json", "Stripe-Should-Retry": "false"}
            )
        conn = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=60)
        try:
            headers = {k: v for k, v in h.headers.items() if k.lower() not in ("host", "connection")}
            conn.request(h.command, h.path, body=body or None, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        except (http.client.HTTPException, ConnectionError, OSError):
            with self.lock:
                self.counts["drop"] += 1
            h.close_connection = True  # as the emulator did: the work is done, the answer never comes
            return
        finally:
            conn.close()
        if forced == "drop":
            with self.lock:
                self.counts["drop"] += 1
            h.close_connection = True
            return
        if resp.status >= 500:
            with self.lock:
                self.counts["500"] += 1
        self._send(h, resp.status, data, dict(resp.getheaders()))

"""Hostile keys: a Stripe key with whitespace or control characters (a CRLF .env file) is refused naming
the problem, never the key; whatever the SDK or the HTTP library raise, and whatever an error body echoes,
reaches no output and no stored file with the key in it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import stripe

from metering_dagster.billing import retry
from metering_dagster.billing.client import StripeKeyRefused, _client, open_stripe
from metering_dagster.contract import load_contract
from metering_dagster.settings import load_settings

REPO = Path(__file__).resolve().parents[2]
MIDDLE = "Zq8XwV3nLp5Rt7Ky2Hs4Jd6Fg9Bm1Cx"  # the distinctive part: found nowhere, in no form
TEST_KEY = f"sk_test_51{MIDDLE}"
LIVE_KEY = f"sk_live_51{MIDDLE}"
MALFORMED = {
    "trailing carriage return": ("{}\r", "a carriage return (\\r) at the end"),
    "trailing CRLF": ("{}\r\n", "a carriage return (\\r) inside"),
    "trailing line feed": ("{}\n", "a line feed (\\n) at the end"),
    "leading space": (" {}", "a space at the start"),
    "trailing space": ("{} ", "a space at the end"),
    "tab inside": ("{}", "a tab (\\t) inside"),  # replaced below: a tab in the middle of the key
    "NUL inside": ("{}", "a NUL byte inside"),
    "no-break space": ("{}\u00a0", "the character U+00A0 at the end"),
}


def malformed(form: str, key: str) -> str:
    if form == "tab inside":
        return key[:20] + "\t" + key[20:]
    if form == "NUL inside":
        return key[:20] + "\x00" + key[20:]
    return MALFORMED[form][0].format(key)


def leaks(text: str | bytes, key: str) -> list[str]:
    """The forms of `key` found in `text`: as is, stripped, escaped (Python, JSON), its middle part."""
    forms = {key, key.strip(), repr(key)[1:-1], json.dumps(key)[1:-1], MIDDLE, MIDDLE[:12], MIDDLE[-12:]}
    haystack = text if isinstance(text, str) else text.decode("utf-8", "replace")
    return sorted(f for f in forms if f and f in haystack)


@pytest.fixture
def settings_and_contract(metering_env):
    settings = load_settings()
    return settings, load_contract(settings.contract_path)


@pytest.mark.parametrize("form", list(MALFORMED))
@pytest.mark.parametrize("mode", ["test", "live in production"])
def test_a_key_with_whitespace_or_control_characters_is_refused_naming_the_problem(settings_and_contract, form, mode):
    from dataclasses import replace

    settings, contract = settings_and_contract
    environ = {"STRIPE_API_KEY": malformed(form, TEST_KEY), "STRIPE_API_BASE": "http://127.0.0.1:9"}
    if mode != "test":
        contract = replace(contract, environment="live")
        environ.update(STRIPE_API_KEY=malformed(form, LIVE_KEY), METERING_ENV="production")
    with pytest.raises(StripeKeyRefused) as info:
        open_stripe(settings, contract, environ=environ)
    message = "".join(traceback.format_exception(info.value))
    assert MALFORMED[form][1] in message
    assert not leaks(message, environ["STRIPE_API_KEY"])


def test_what_the_http_library_raises_never_carries_the_key(monkeypatch):
    """Past the key check (or with a key it cannot foresee), requests' InvalidHeader quotes the whole
    `Bearer sk_…` header: the exception leaving the SDK is masked and loses that cause."""
    monkeypatch.setattr(retry, "DEFAULT_POLICY", retry.RetryPolicy(max_attempts=1))
    key = TEST_KEY + "\r"
    client = _client(key, "http://127.0.0.1:9")
    with pytest.raises(stripe.APIConnectionError) as info:
        client.v1.customers.list()
    error = info.value
    everything = "".join(traceback.format_exception(error)) + repr(error) + repr(vars(error))
    assert "InvalidHeader" in everything  # still says what went wrong
    assert not leaks(everything, key)
    assert error.__cause__ is None and error.__context__ is None


class _EchoingStripe(BaseHTTPRequestHandler):
    """A Stripe-like endpoint whose error repeats the Authorization header it got, as a proxy might."""

    def do_GET(self):
        body = json.dumps(
            {
                "error": {
                    "type": "invalid_request_error",
                    "code": "api_key_invalid",
                    "message": f"Invalid API Key provided: {self.headers['Authorization']}",
                }
            }
        )
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args):
        pass


def test_an_error_body_that_echoes_the_key_is_masked_before_the_sdk_reads_it(settings_and_contract):
    settings, contract = settings_and_contract
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoingStripe)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        environ = {"STRIPE_API_KEY": TEST_KEY, "STRIPE_API_BASE": f"http://127.0.0.1:{server.server_port}"}
        with open_stripe(settings, contract, environ=environ) as conn:
            try:  # caught inside the block, as the upload does before it stores the error text
                conn.client.v1.customers.list()
            except stripe.StripeError as err:
                error = err
    finally:
        server.shutdown()
    assert isinstance(error, stripe.AuthenticationError)
    stored = [
        str(error),
        repr(error),
        error.user_message,
        error.http_body,
        json.dumps(error.json_body),
        str(error.error),
        "".join(traceback.format_exception(error)),
    ]
    assert "Invalid API Key provided: Bearer sk_test_" in str(error)
    assert not leaks("\n".join(stored), TEST_KEY)


@pytest.fixture
def emulator(tmp_path_factory):
    from stripe_emulator import EmulatorServer

    server = EmulatorServer(tmp_path_factory.mktemp("emulator") / "stripe.sqlite", port=0)
    server.start()
    yield server.url
    server.stop()


@pytest.mark.slow
def test_metering_run_shows_and_stores_no_byte_of_a_malformed_key(metering_env, dbt_manifest, emulator):
    """`metering run` with keys from a CRLF .env file and other slips, in test and in live/production mode:
    refused (exit 1) naming the problem; no form of the key in stdout, stderr or any file of the state folder
    (Dagster's run and event databases, compute logs, dbt's logs, the warehouse)."""
    live_contract = metering_env["contract"].with_name("live.yml")
    live_contract.write_text(metering_env["contract"].read_text().replace("environment: test", "environment: live"))
    runs = [
        ({"STRIPE_API_KEY": TEST_KEY + "\r"}, "a carriage return (\\r) at the end"),
        (
            {
                "STRIPE_API_KEY": LIVE_KEY + "\r\n",
                "METERING_ENV": "production",
                "METERING_CONTRACT": str(live_contract),
            },
            "a carriage return (\\r) inside",
        ),
    ]  # the other forms take the same path (the unit tests above): a run costs half a minute
    for extra, problem in runs:
        env = dict(os.environ, STRIPE_API_BASE=emulator, **extra)
        result = subprocess.run(
            [sys.executable, "-m", "metering_dagster.cli", "run"],
            check=False,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            cwd=REPO,
        )
        key = extra["STRIPE_API_KEY"]
        assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
        assert problem in result.stdout + result.stderr
        assert not leaks(result.stdout + result.stderr, key), (result.stdout, result.stderr)
        stored = [(str(p), leaks(p.read_bytes(), key)) for p in metering_env["state"].rglob("*") if p.is_file()]
        assert len(stored) > 5 and [s for s in stored if s[1]] == []

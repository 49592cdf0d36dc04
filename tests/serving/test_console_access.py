"""Who sees what in the usage console: 401 without a token, 403 for a customer token on any other customer (ids in
another case, percent-encoded, with `..` or double slashes), the sign-in cookie, and no token or Stripe key in any
answer. Over real HTTP against `metering serve`'s app on the demo's data."""

from __future__ import annotations

import re
import urllib.error
import urllib.parse
import urllib.request

import pytest

from metering_dagster.serving.console.tokens import create_token, revoke_token, tokens_path
from tests.serving.console_demo import ADMIN_TOKEN, OCTOBER, no_redirect, shown

pytestmark = pytest.mark.slow  # one `metering demo` for the module's tests


def customer_paths(customer: str) -> list[str]:
    """Every page, download and API answer of one customer."""
    c = urllib.parse.quote(customer, safe="")
    line = f"/customers/{c}/periods/{OCTOBER}/meters/api_calls"
    return [
        f"/customers/{c}",
        line,
        f"{line}?page=2",
        f"{line}/events.csv",
        f"{line}/events.parquet",
        f"/customers/{c}/periods/{OCTOBER}/statement",
        f"/customers/{c}/periods/{OCTOBER}/statement.pdf",
        f"/v1/entitlements/{c}",
    ]


# cus_acme's token asking for cus_globex in every way a path can be bent
OTHER_CUSTOMER_PATHS = [
    *customer_paths("cus_globex"),
    "/customers/CUS_GLOBEX",
    "/customers/Cus_Acme",  # its own id in another case is another id
    "/customers/CUS_ACME/periods/2026-10-01T00:00:00Z/meters/api_calls/events.csv",
    "/customers/%63us_globex",  # percent-encoded letters
    "/customers/%63%75%73%5f%67%6c%6f%62%65%78/periods/2026-10-01T00:00:00Z/statement",
    "/customers/cus_acme/../cus_globex",
    "/customers/cus_acme/..%2Fcus_globex",
    "/customers/cus_acme%2F..%2Fcus_globex",
    "/customers/cus_acme/%2e%2e/cus_globex",
    "/customers/cus_acme/../../customers/cus_globex/periods/2026-10-01T00:00:00Z/meters/api_calls/events.csv",
    "/customers//cus_globex",
    "//customers/cus_globex",
    "/customers/cus_acme//../cus_globex",
    "/customers/./cus_globex",
    "/customers/cus_globex%00",
    "/customers/cus_acme%00",
    "/v1/entitlements",
    "/v1/entitlements?access=block",
    "/v1/entitlements/CUS_ACME",
    "/v1/entitlements/cus_acme/../cus_globex",
    "/v1/entitlements/cus_acme%2F..%2Fcus_globex",
]


def test_without_a_token_every_page_and_download_is_401(console_demo):
    for path in ["/", *customer_paths("cus_acme"), *customer_paths("cus_globex"), "/customers/nobody"]:
        for token in (None, "mtk_not-a-token", ADMIN_TOKEN + "x"):
            answer = console_demo.get(path, token=token)
            assert answer.status == 401, (path, token)
            assert "cus_acme" not in answer.text and "cus_globex" not in answer.text
    # a browser asking for a page is sent to the sign-in form
    page = console_demo.get("/customers/cus_acme", token=None, headers={"Accept": "text/html"})
    assert page.status == 401 and 'href="/login"' in page.text


def test_a_customer_token_sees_its_own_pages_and_is_sent_there_from_the_list(console_demo):
    token = console_demo.customer_tokens["cus_acme"]
    for path in customer_paths("cus_acme"):
        assert console_demo.get(path, token=token).status == 200, path
    request = urllib.request.Request(console_demo.base + "/", headers={"Authorization": f"Bearer {token}"})
    try:
        no_redirect.open(request)
        raise AssertionError("/ answered a customer token without sending it to its own page")
    except urllib.error.HTTPError as redirect:
        assert (redirect.code, redirect.headers["location"]) == (303, "/customers/cus_acme")


@pytest.mark.parametrize("path", OTHER_CUSTOMER_PATHS)
def test_a_customer_token_gets_403_on_any_other_customer(console_demo, path):
    answer = console_demo.get(path, token=console_demo.customer_tokens["cus_acme"])
    assert answer.status == 403, path
    assert "globex" not in answer.text.lower()


def test_the_admin_sees_every_customer_and_ids_are_exact(console_demo):
    for path in customer_paths("cus_globex"):
        assert console_demo.get(path).status == 200, path
    assert console_demo.get("/customers/CUS_GLOBEX").status == 404
    assert console_demo.get("/customers/cus_acme/../cus_globex").status == 404  # never resolved into another id
    listed = shown(console_demo.get("/").text, "customer-link")
    assert [s.text for s in listed] == ["cus_acme", "cus_globex", "cus_initech", "cus_umbrella"]


def test_a_customers_pages_hold_nothing_of_another_customer(console_demo):
    others = {"cus_globex", "cus_initech", "cus_umbrella"}
    invoice_ids = {
        invoice
        for (customer, invoice) in console_demo.marts(
            "select distinct customer_id, stripe_invoice_id from marts.rpt_reconciliation where stripe_invoice_id is not null"
        )
        if customer != "cus_acme"
    }
    event_ids = {
        e
        for (e,) in console_demo.marts("select event_id from marts.fct_metered_events where customer_id <> 'cus_acme'")
    }
    token = console_demo.customer_tokens["cus_acme"]
    for path in customer_paths("cus_acme"):
        body = console_demo.get(path, token=token).body
        text = body.decode("utf-8", "replace")
        assert not any(other in text for other in others | invoice_ids), path
        if path.endswith(".csv"):
            assert not {row.split(",")[1] for row in text.splitlines()[1:]} & event_ids


def test_sign_in_sets_an_http_only_strict_cookie_that_opens_only_its_customer(console_demo):
    token = console_demo.customer_tokens["cus_acme"]
    form = urllib.parse.urlencode({"token": token, "next": "/customers/cus_acme"}).encode()
    request = urllib.request.Request(console_demo.base + "/login", data=form, method="POST")
    try:
        no_redirect.open(request)
        raise AssertionError("signing in did not redirect")
    except urllib.error.HTTPError as redirect:
        assert (redirect.code, redirect.headers["location"]) == (303, "/customers/cus_acme")
        cookie = redirect.headers["set-cookie"]
    assert cookie.startswith(f"metering_session={token};")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert "Secure" not in cookie  # served over http here; over https it is Secure
    session = {"Cookie": f"metering_session={token}"}
    assert console_demo.get("/customers/cus_acme", token=None, headers=session).status == 200
    assert console_demo.get("/customers/cus_globex", token=None, headers=session).status == 403
    assert console_demo.get("/v1/entitlements/cus_globex", token=None, headers=session).status == 403

    wrong = urllib.request.Request(
        console_demo.base + "/login", data=urllib.parse.urlencode({"token": "mtk_guess"}).encode(), method="POST"
    )
    try:
        urllib.request.urlopen(wrong)
        raise AssertionError("a wrong token signed in")
    except urllib.error.HTTPError as refused:
        body = refused.read().decode()
        assert refused.code == 401 and shown(body, "login-error") and "set-cookie" not in refused.headers
        assert "mtk_guess" not in body
    # a sign-in never sends the browser to another site
    outside = urllib.request.Request(
        console_demo.base + "/login",
        data=urllib.parse.urlencode({"token": token, "next": "//evil.example/x"}).encode(),
        method="POST",
    )
    try:
        no_redirect.open(outside)
    except urllib.error.HTTPError as redirect:
        assert redirect.headers["location"] == "/"


_SECRET = re.compile(r"(sk|rk)_(test|live)_[A-Za-z0-9]+|whsec_|mtk_[A-Za-z0-9_-]{20,}")


def test_no_answer_holds_a_token_or_a_stripe_key(console_demo):
    tokens = [ADMIN_TOKEN, *console_demo.customer_tokens.values()]
    paths = ["/", "/login", "/healthz", "/v1/entitlements", *customer_paths("cus_acme"), *customer_paths("cus_globex")]
    for token in (ADMIN_TOKEN, console_demo.customer_tokens["cus_acme"]):
        for path in paths:
            answer = console_demo.get(path, token=token)
            for text in (answer.body.decode("latin-1"), str(answer.headers)):
                assert not any(t in text for t in tokens), path
                assert not _SECRET.search(text), path
    # the state folder keeps the tokens' hashes only
    stored = tokens_path(console_demo.state).read_text()
    assert not any(t in stored for t in tokens[1:])
    assert oct(tokens_path(console_demo.state).stat().st_mode & 0o777) == "0o600"


def test_a_token_made_or_revoked_counts_at_the_next_request(console_demo):
    token = create_token(console_demo.state, "cus_initech")
    assert console_demo.get("/customers/cus_initech", token=token).status == 200
    assert console_demo.get("/customers/cus_acme", token=token).status == 403
    assert [t.customer_id for t in revoke_token(console_demo.state, "cus_initech")] == ["cus_initech"]
    assert console_demo.get("/customers/cus_initech", token=token).status == 401

"""`GET /v1/entitlements[/{customer_id}]` and `/healthz` over real HTTP, from a published analysts' copy."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime, timedelta

import pytest

from tests.serving.conftest import TOKEN, fresh, publish

CUSTOMER_PATHS_NOT_FOUND = [
    "/v1/entitlements/cus_nobody",
    "/v1/entitlements/CUS_ACME",  # ids are case-sensitive
    "/v1/entitlements/cus_acme%20",
    "/v1/entitlements/%20cus_acme",
    "/v1/entitlements/cus_acme/",
    "/v1/entitlements/cus_acme%2F",
    "/v1/entitlements/org%2Finitech%2F..",
    "/v1/entitlements/../entitlements/cus_acme",
    "/v1/entitlements/..%2Fentitlements%2Fcus_acme",
    "/v1/entitlements/%2e%2e/healthz",
    "/v1/entitlements/cus_acme%00",
    "/v1/entitlements/c%C3%BCs_acme",  # unicode
    "/v1/entitlements/%FF%FE",  # not UTF-8
    "/v1/entitlements/cus_acme'%20or%20'1'='1",
    "/v1/entitlements/%25",
    "/v1/entitlements/",
]


def test_an_allowed_customer_gets_its_current_budgets_as_exact_strings(api, state):
    as_of = fresh()
    publish(state, as_of=as_of)
    answer = api.get("/v1/entitlements/cus_acme")
    assert answer.status == 200
    assert answer.body == {
        "customer_id": "cus_acme",
        "access": "allow",
        "reasons": [],
        "budgets": [  # the current period's rows only, by budget key; October's 9999 cents are not shown
            {
                "key": "gpu_cap",
                "used": "0.000000000001",
                "limit": "0",
                "percent": None,  # a limit of 0 has no percentage
                "unit": "second",
                "period_start": "2026-11-01T00:00:00Z",
                "period_end": "2026-12-01T00:00:00Z",
            },
            {
                "key": "monthly_spend",
                "used": "4100",
                "limit": "5000",
                "percent": "82",
                "unit": "cents",
                "period_start": "2026-11-01T00:00:00Z",
                "period_end": "2026-12-01T00:00:00Z",
            },
        ],
        "as_of": as_of.isoformat().replace("+00:00", "Z"),
        "stale": False,
    }


def test_a_blocked_customer_gets_the_reasons_and_exact_large_numbers(api, state):
    publish(state, as_of=fresh())
    answer = api.get("/v1/entitlements/cus_globex")
    assert answer.status == 200
    assert (answer.body["access"], answer.body["reasons"]) == ("block", ["api_call_cap: 25 of 20 call (125%)"])
    budgets = {b["key"]: (b["used"], b["limit"], b["percent"]) for b in answer.body["budgets"]}
    # past a float's 17 digits, and never a number
    assert budgets == {
        "api_call_cap": ("25", "20", "125"),
        "monthly_spend": ("12345678901234567890.5", "5000", "246913578024691357.81"),
    }


def test_an_id_with_a_slash_is_data(api, state):
    publish(state, as_of=fresh())
    answer = api.get("/v1/entitlements/org%2Finitech")
    assert (answer.status, answer.body["customer_id"], answer.body["budgets"]) == (200, "org/initech", [])
    assert api.get("/v1/entitlements/org/initech").body["customer_id"] == "org/initech"


@pytest.mark.parametrize("path", CUSTOMER_PATHS_NOT_FOUND)
def test_an_unknown_or_mangled_id_is_not_found(api, state, path):
    publish(state, as_of=fresh())
    answer = api.get(path)
    assert (answer.status, answer.body["error"]) == (404, "unknown_customer"), path


@pytest.mark.parametrize(
    "authorization",
    [None, f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", "Bearer", f"Basic {TOKEN}", TOKEN, f"Token {TOKEN}"],
)
def test_without_the_token_the_answer_is_401_with_a_bearer_challenge(api, state, authorization):
    publish(state, as_of=fresh())
    for path in ("/v1/entitlements/cus_acme", "/v1/entitlements", "/v1/entitlements/cus_nobody", "/v2/anything"):
        answer = api.get(path, token=None, authorization=authorization)
        assert (answer.status, answer.body["error"]) == (401, "unauthorized"), path
        assert answer.headers["www-authenticate"].startswith("Bearer")
        assert "customer_id" not in answer.body


def test_the_scheme_is_case_insensitive(api, state):
    publish(state, as_of=fresh())
    assert api.get("/v1/entitlements/cus_acme", authorization=f"bearer {TOKEN}").status == 200


@pytest.mark.parametrize(("fail_mode", "access"), [("open", "allow"), ("closed", "block")])
def test_stale_data_answers_with_the_fail_mode_and_logs_it(api, state, caplog, fail_mode, access):
    as_of = datetime.now(UTC) - timedelta(minutes=16)
    publish(state, as_of=as_of, fail_mode=fail_mode)
    shown = as_of.isoformat().replace("+00:00", "Z")
    reason = f"stale: data as of {shown} is older than 15m (fail_mode {fail_mode})"
    with caplog.at_level(logging.WARNING, logger="metering.serve"):
        for customer in ("cus_acme", "cus_globex"):
            answer = api.get(f"/v1/entitlements/{customer}")
            assert answer.status == 200
            assert (answer.body["access"], answer.body["reasons"], answer.body["stale"]) == (access, [reason], True)
            assert [b["key"] for b in answer.body["budgets"]]  # the figures are still shown
    stale_lines = [r.getMessage() for r in caplog.records if r.name == "metering.serve"]
    assert len(stale_lines) == 2 and all(reason in line for line in stale_lines)
    assert "cus_globex" in stale_lines[1] and f"access {access}" in stale_lines[1]


def test_fresh_data_is_not_stale_up_to_the_limit(api, state):
    publish(state, as_of=datetime.now(UTC) - timedelta(minutes=14), max_staleness=900)
    answer = api.get("/v1/entitlements/cus_globex")
    assert (answer.body["stale"], answer.body["access"]) == (False, "block")


def test_the_list_gives_every_customer_or_those_with_the_access_asked(api, state):
    as_of = fresh()
    publish(state, as_of=as_of)
    everyone = api.get("/v1/entitlements")
    assert everyone.status == 200
    assert everyone.body["as_of"] == as_of.isoformat().replace("+00:00", "Z")
    assert [c["customer_id"] for c in everyone.body["data"]] == ["cus_acme", "cus_globex", "org/initech"]
    assert everyone.body["data"][1] == api.get("/v1/entitlements/cus_globex").body  # the same objects
    blocked = api.get("/v1/entitlements?access=block")
    assert [c["customer_id"] for c in blocked.body["data"]] == ["cus_globex"]
    allowed = api.get("/v1/entitlements?access=allow")
    assert [c["customer_id"] for c in allowed.body["data"]] == ["cus_acme", "org/initech"]
    for bad in ("blocked", "BLOCK", "", "block%27%20or%201=1"):
        answer = api.get(f"/v1/entitlements?access={bad}")
        assert (answer.status, answer.body["error"]) == (400, "invalid_access"), bad


def test_the_list_filters_on_the_answer_given_for_stale_data(api, state):
    publish(state, as_of=datetime.now(UTC) - timedelta(hours=1), fail_mode="closed")
    blocked = api.get("/v1/entitlements?access=block")
    assert [c["customer_id"] for c in blocked.body["data"]] == ["cus_acme", "cus_globex", "org/initech"]
    assert api.get("/v1/entitlements?access=allow").body["data"] == []


def test_before_any_publication_the_api_says_so_with_503(api, state):
    for path in ("/v1/entitlements/cus_acme", "/v1/entitlements", "/healthz"):
        answer = api.get(path)
        assert (answer.status, answer.body["error"]) == (503, "not_published"), path
        assert "metering run" in answer.body["detail"]
    assert api.get("/v1/entitlements/cus_acme", token=None).status == 401  # the token is checked first
    publish(state, as_of=fresh())
    assert api.get("/v1/entitlements/cus_acme").status == 200


def test_a_copy_published_before_budgets_is_503_naming_what_is_missing(api, state):
    import duckdb

    con = duckdb.connect(str(state / "analytics.duckdb"))
    con.execute("create schema marts; create table marts.fct_usage_by_period (customer_id varchar)")
    con.close()
    answer = api.get("/v1/entitlements/cus_acme")
    assert answer.status == 503 and "fct_entitlements, fct_budget_status" in answer.body["detail"]


def test_each_publication_is_read_as_soon_as_it_replaces_the_last(api, state):
    publish(state, as_of=fresh())
    assert api.get("/v1/entitlements/cus_acme").body["access"] == "allow"
    publish(state, as_of=fresh(), customers={"cus_acme": ("block", ["monthly_spend: 5000 of 5000 cents (100%)"])})
    assert api.get("/v1/entitlements/cus_acme").body["reasons"] == ["monthly_spend: 5000 of 5000 cents (100%)"]
    assert api.get("/v1/entitlements/cus_globex").status == 404


def test_health_is_open_and_gives_the_age_of_the_data(api, state):
    as_of = fresh()
    publish(state, as_of=as_of)
    answer = api.get("/healthz", token=None)
    assert answer.status == 200
    assert answer.body == {"status": "ok", "as_of": as_of.isoformat().replace("+00:00", "Z"), "stale": False}


def test_other_routes_and_methods_are_json_errors(api, state):
    publish(state, as_of=fresh())
    answer = api.get("/v1/nothing")
    assert (answer.status, answer.body["error"]) == (404, "not_found")
    answer = api.get("/v1/entitlements/cus_acme", method="DELETE")
    assert (answer.status, answer.body["error"]) == (405, "method_not_allowed")
    assert set(answer.headers["allow"].split(", ")) == {"GET", "HEAD"}


def test_the_server_writes_nothing_in_the_state_folder(api, state):
    publish(state, as_of=fresh())

    def listing():
        return sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in state.iterdir())

    before = listing()
    for path in ("/healthz", "/v1/entitlements", "/v1/entitlements/cus_acme", "/v1/entitlements/cus_nobody"):
        api.get(path)
    assert listing() == before
    assert os.listdir(state) == ["analytics.duckdb"]

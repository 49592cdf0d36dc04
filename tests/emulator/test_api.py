"""API conventions: keys, error bodies, pagination, Idempotency-Key replay, deliberate faults."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid

import pytest
import stripe

from stripe_emulator import EmulatorServer

from .conftest import T0, assert_stripe_fields, make_client


def _raw(url, method="GET", body=None, key="sk_test_x", headers=None):
    req = urllib.request.Request(
        url, data=body, method=method, headers={"Authorization": f"Bearer {key}", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, dict(r.headers), json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), json.loads(e.read())


def test_keys(server):
    with pytest.raises(stripe.AuthenticationError):
        make_client(server.url, "sk_live_abc").v1.customers.list()
    status, _, body = _raw(server.url + "/v1/customers", key="")
    assert status == 401 and body["error"]["type"] == "invalid_request_error"
    assert make_client(server.url, "sk_test_anything_at_all").v1.customers.list().object == "list"


def test_error_bodies(server, client):
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.customers.retrieve("cus_nope")
    assert err.value.http_status == 404 and err.value.code == "resource_missing"
    assert err.value.json_body["error"]["message"] == "No such customer: 'cus_nope'"
    status, _, body = _raw(server.url + "/v1/unknown")
    assert status == 404 and "Unrecognized request URL" in body["error"]["message"]
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.billing.meters.create({"display_name": "x"})
    assert err.value.code == "parameter_missing" and err.value.param == "event_name"


def test_customer_product_clock_objects(build, client):
    clock = build.clock()
    assert_stripe_fields(clock, "test_helpers.test_clock")
    assert client.v1.test_helpers.test_clocks.retrieve(clock.id).frozen_time == T0
    assert clock.id in [c.id for c in client.v1.test_helpers.test_clocks.list({"limit": 100}).data]
    cust = build.customer(clock, metadata={"tenant": "t1"}, email="a@example.com")
    assert_stripe_fields(cust, "customer")
    assert cust.metadata.to_dict() == {"tenant": "t1"} and cust.test_clock == clock.id
    cust = client.v1.customers.update(cust.id, {"metadata": {"tenant": "", "plan": "pro", "_team": "ml"}})
    assert cust.metadata.to_dict() == {"plan": "pro", "_team": "ml"}  # a user's key may start with "_"
    assert client.v1.customers.retrieve(cust.id).metadata.to_dict() == {"plan": "pro", "_team": "ml"}
    prod = client.v1.products.create({"name": "Widget"})
    assert_stripe_fields(prod, "product")
    assert client.v1.products.update(prod.id, {"name": "W2"}).name == "W2"
    assert client.v1.customers.delete(cust.id).deleted
    assert_stripe_fields(client.v1.customers.retrieve(cust.id), "deleted_customer")
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.test_helpers.test_clocks.advance(clock.id, {"frozen_time": T0 - 1})


def test_pagination(client):
    tag = uuid.uuid4().hex
    clock = client.v1.test_helpers.test_clocks.create({"frozen_time": T0, "name": tag})
    ids = [client.v1.customers.create({"name": str(i), "test_clock": clock.id}).id for i in range(5)]
    newest_first = list(reversed(ids))
    page1 = client.v1.customers.list({"test_clock": clock.id, "limit": 2})
    assert [c.id for c in page1.data] == newest_first[:2] and page1.has_more
    page2 = client.v1.customers.list({"test_clock": clock.id, "limit": 2, "starting_after": page1.data[-1].id})
    assert [c.id for c in page2.data] == newest_first[2:4] and page2.has_more
    back = client.v1.customers.list({"test_clock": clock.id, "limit": 2, "ending_before": page2.data[0].id})
    assert [c.id for c in back.data] == newest_first[:2] and not back.has_more
    every = [c.id for c in client.v1.customers.list({"test_clock": clock.id, "limit": 2}).auto_paging_iter()]
    assert every == newest_first


def test_pagination_of_a_filtered_list(client):
    """A filter the storage does not index (`email`) pages like any other list, both ways, while the
    objects it drops sit between and around the ones it keeps."""
    tag = uuid.uuid4().hex
    clock = client.v1.test_helpers.test_clocks.create({"frozen_time": T0, "name": tag})
    email = f"{tag}@example.com"
    kept = []
    for i in range(12):
        made = client.v1.customers.create(
            {"name": str(i), "test_clock": clock.id, **({"email": email} if i % 3 == 0 else {})}
        )
        if i % 3 == 0:
            kept.append(made.id)
    newest_first = list(reversed(kept))
    page1 = client.v1.customers.list({"test_clock": clock.id, "email": email, "limit": 2})
    assert [c.id for c in page1.data] == newest_first[:2] and page1.has_more
    page2 = client.v1.customers.list(
        {"test_clock": clock.id, "email": email, "limit": 2, "starting_after": page1.data[-1].id}
    )
    assert [c.id for c in page2.data] == newest_first[2:] and not page2.has_more
    back = client.v1.customers.list(
        {"test_clock": clock.id, "email": email, "limit": 1, "ending_before": page2.data[0].id}
    )
    assert [c.id for c in back.data] == newest_first[1:2] and back.has_more
    every = [c.id for c in client.v1.customers.list({"email": email, "limit": 1}).auto_paging_iter()]
    assert every == newest_first


def test_idempotency_replay_and_conflict(client):
    key = uuid.uuid4().hex
    a = client.v1.customers.create({"name": "idem"}, {"idempotency_key": key})
    b = client.v1.customers.create({"name": "idem"}, {"idempotency_key": key})
    assert a.id == b.id
    assert b.last_response.headers.get("Idempotent-Replayed") == "true"
    with pytest.raises(stripe.IdempotencyError):
        client.v1.customers.create({"name": "other"}, {"idempotency_key": key})


def test_rate_limit(tmp_path):
    with EmulatorServer(tmp_path / "r.sqlite", rate_limit=5) as srv:
        c = make_client(srv.url)
        codes = []
        for _ in range(12):
            try:
                c.v1.customers.list()
                codes.append(200)
            except stripe.RateLimitError as e:
                codes.append(e.http_status)
        assert codes.count(200) == 5 and codes.count(429) == 7


@pytest.fixture
def fast_retries(monkeypatch):
    from stripe._http_client import HTTPClient

    monkeypatch.setattr(HTTPClient, "INITIAL_DELAY", 0.001)
    monkeypatch.setattr(HTTPClient, "MAX_DELAY", 0.01)


def test_fail_rate_and_retries(tmp_path, fast_retries):
    with EmulatorServer(tmp_path / "f.sqlite", fail_rate=0.5, seed=7) as srv:
        flaky = make_client(srv.url)
        with pytest.raises(stripe.APIError):
            for _ in range(20):
                flaky.v1.customers.create({"name": "x"})
        retrying = make_client(srv.url, max_network_retries=10)
        names = {retrying.v1.customers.create({"name": f"c{i}"}).id for i in range(10)}
        assert len(names) == 10


def test_drop_after_commit_then_idempotent_retry(tmp_path, fast_retries):
    with EmulatorServer(tmp_path / "d.sqlite", drop_after_commit_rate=0.5, seed=3) as srv:
        c = make_client(srv.url, max_network_retries=10)
        created = [c.v1.customers.create({"name": f"c{i}", "metadata": {"i": str(i)}}).id for i in range(10)]
        ok = make_client(srv.url, max_network_retries=10)
        listed = [x.id for x in ok.v1.customers.list({"limit": 100}).auto_paging_iter()]
        assert sorted(listed) == sorted(created)  # each committed once despite dropped answers and retries
        with pytest.raises(stripe.APIConnectionError):
            for _ in range(20):
                make_client(srv.url).v1.customers.create({"name": "no retry"})


def test_latency(tmp_path):
    with EmulatorServer(tmp_path / "l.sqlite", latency_ms=100) as srv:
        c = make_client(srv.url)
        t = time.perf_counter()
        c.v1.customers.list()
        assert time.perf_counter() - t >= 0.1

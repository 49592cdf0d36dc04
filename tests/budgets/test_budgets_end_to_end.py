"""Budgets end to end, as a user runs them: real `metering run`s against the bundled Stripe emulator, a contract and
usage logs written here, a real webhook receiver on 127.0.0.1 that verifies every Standard Webhooks signature, and
a real `metering serve` answering from what each run publishes.

The story, in five runs (Stripe's test clock in October, then in November):

1. October's usage: cus_acme's spend crosses 80 % and 100 % of the "*" budget, cus_globex's tokens cross its own
   `block` quantity budget; the receiver answers 500 three times, then 200.
2. Nothing new: nothing is sent.
3. A duplicate and quarantined lines that would cross cus_initech's thresholds if they counted, and a negative
   correction that brings cus_globex back under its cap: one alert, the 100 % cleared; the API lets globex in.
   The run is killed once the receiver has answered that alert, before it is recorded: the next run sends it
   again, same webhook-id and body, and a receiver that dedupes on the id acts on it once.
4. November: budgets start over; cus_acme's new spend crosses 80 % of the new period, and nothing else is sent.
"""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.budgets.conftest import SECRET, Receiver
from tests.faults.runs import Runs, query
from tests.pipeline.conftest import event
from tests.serving.conftest import TOKEN, Api

pytestmark = pytest.mark.slow  # five `metering run`s

CONTRACT = """\
environment: test
currency: usd
test_clock_start: "2026-10-01T00:00:00Z"
meters:
  - key: tokens
    action: inference
    value: metadata.tokens
    aggregation: sum
    unit: token
    price:
      model: graduated            # a flat fee in the first tier: 500 + 1 per token up to 1000, then 0.5
      tiers:
        - {up_to: 1000, unit_amount_decimal: "1", flat_amount_decimal: "500"}
        - {up_to: inf, unit_amount_decimal: "0.5"}
customers:
  - {id: cus_acme, billing_anchor: "2026-10-01T00:00:00Z", interval: month}
  - {id: cus_globex, billing_anchor: "2026-10-01T00:00:00Z", interval: month}
  - {id: cus_initech, billing_anchor: "2026-10-01T00:00:00Z", interval: month}
budgets:
  - {key: monthly_spend, customer: "*", spend: "5000", thresholds: [80, 100], on_exceed: notify}
  - {key: monthly_spend, customer: cus_globex, spend: "100000"}
  - {key: token_cap, customer: cus_globex, meter: tokens, quantity: "10000", on_exceed: block}
"""
OCTOBER = ("2026-10-01T00:00:00Z", "2026-11-01T00:00:00Z")
NOVEMBER = ("2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z")


def tokens(event_id: str, day: str, customer_id: str, amount, **extra) -> dict:
    return event(event_id, f"{day}T10:00:00Z", customer_id, "inference", metadata={"tokens": amount}, **extra)


def write_log(raw: Path, name: str, lines: list[dict | str]) -> None:
    """Written under another name, then renamed: a usage log appears complete."""
    text = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    (raw / f"{name}.tmp").write_text(text)
    os.replace(raw / f"{name}.tmp", raw / name)


class Story:
    """The runs of the story and what each one sent to the receiver."""

    def __init__(self, env: dict[str, str], state: Path, receiver: Receiver):
        self.runs = Runs(env)
        self.state = state
        self.receiver = receiver

    def clock(self, to: str) -> None:
        moved = self.runs.metering("clock", "advance", "--to", to)
        assert moved.returncode == 0, moved.stdout + moved.stderr

    def run(self, crash: str | None = None) -> tuple[list, datetime, datetime]:
        """One `metering run` (killed at `crash`, a point of tests/faults/crashing_run.py): the requests the
        receiver got during it, and when it started and ended."""
        seen = len(self.receiver.received)
        started = datetime.now(UTC)
        done = self.runs.metering("run", crash=crash)
        assert crash or done.returncode == 0, done.stdout + done.stderr
        return self.receiver.received[seen:], started, datetime.now(UTC)

    def sql(self, sql: str) -> list[tuple]:
        return query(self.state, sql)


def accepted(requests: list) -> list[dict]:
    assert all(r.signature_valid for r in requests), [r.msg_id for r in requests if not r.signature_valid]
    return [r.payload for r in requests if 200 <= r.answered < 300]


def body(
    kind: str,
    budget: str,
    customer_id: str,
    threshold: int,
    used: str,
    limit: str,
    unit: str,
    access: str,
    period: tuple[str, str],
    as_of: str,
) -> dict:
    """An alert's JSON body as a receiver reads it: exact numbers as strings, times in UTC with a Z."""
    return {
        "type": f"budget.threshold_{kind}",
        "budget": budget,
        "customer_id": customer_id,
        "period_start": period[0],
        "period_end": period[1],
        "threshold_percent": threshold,
        "used": used,
        "limit": limit,
        "unit": unit,
        "access": access,
        "as_of": as_of,
    }


def utc(text: str) -> datetime:
    assert text.endswith("Z"), text
    return datetime.fromisoformat(text.removesuffix("Z") + "+00:00")


def start_server(runs: Runs):
    """`metering serve` on a free port, as a user starts it; its address from its one line on stdout."""
    server = runs.popen("serve", "--port", "0")
    line = server.stdout.readline()
    address = re.search(r"on (http://127\.0\.0\.1:\d+) ", line)
    assert address, line + (server.stderr.read() if server.poll() is not None else "")
    return server, Api(address.group(1))


def globex(api: Api) -> dict:
    answer = api.get("/v1/entitlements/cus_globex")
    assert answer.status == 200, answer.body
    return answer.body


@pytest.fixture
def story(metering_env, dbt_manifest, receiver):
    metering_env["contract"].write_text(CONTRACT)
    env = dict(os.environ)
    env.update(
        METERING_WEBHOOK_URL=receiver.url,
        METERING_WEBHOOK_SECRET=SECRET,
        METERING_WEBHOOK_ATTEMPTS="4",
        METERING_WEBHOOK_BACKOFF_SECONDS="0.05",
        METERING_API_TOKEN=TOKEN,
    )
    return Story(env, metering_env["state"], receiver)


def test_budget_alerts_and_entitlements_through_metering_runs(story, metering_env):
    raw, receiver = metering_env["raw"], story.receiver
    story.clock("2026-10-20T00:00:00Z")  # Stripe's now: October, after the usage below
    server, api = start_server(story.runs)
    try:
        assert api.get("/v1/entitlements/cus_globex").status == 503  # nothing published yet

        # 1. acme: 8001 tokens = 500 + 1000 + 7001 x 0.5 = 5000.5, billed 5001 cents: past 80 % and 100 % of 5000.
        #    globex: 12000 tokens, 120 % of its cap (block); its spend, 7000 cents, is 7 % of its own 100000
        #    (140 % of the "*" budget it does not get). initech: 5000 tokens, 3500 cents, 70 %: no alert.
        write_log(
            raw,
            "october.jsonl",
            [
                tokens("a1", "2026-10-03", "cus_acme", 4000),
                tokens("a2", "2026-10-10", "cus_acme", 4001),
                tokens("g1", "2026-10-05", "cus_globex", 12000),
                tokens("i1", "2026-10-04", "cus_initech", 5000),
            ],
        )
        receiver.fail_next = 3  # the first alert's first three attempts get a 500
        requests, started, ended = story.run()

        first_id = requests[0].msg_id
        assert [(r.msg_id, r.answered) for r in requests[:4]] == [(first_id, 500)] * 3 + [(first_id, 204)]
        assert len({r.body for r in requests[:4]}) == 1  # every attempt sent the same bytes
        assert all(r.answered == 204 for r in requests[4:])
        assert receiver.acted_on() == list(dict.fromkeys(r.msg_id for r in requests))  # each accepted once
        alerts = accepted(requests)
        as_of = alerts[0]["as_of"]  # when run 1 looked at the raw folder
        assert started.replace(microsecond=0) <= utc(as_of) <= ended
        assert alerts == [  # 80 before 100, exact amounts: the shadow invoice's cents, the meter's tokens
            body("reached", "monthly_spend", "cus_acme", 80, "5001", "5000", "cents", "allow", OCTOBER, as_of),
            body("reached", "monthly_spend", "cus_acme", 100, "5001", "5000", "cents", "allow", OCTOBER, as_of),
            body("reached", "token_cap", "cus_globex", 80, "12000", "10000", "token", "block", OCTOBER, as_of),
            body("reached", "token_cap", "cus_globex", 100, "12000", "10000", "token", "block", OCTOBER, as_of),
        ]
        # globex's own spend budget replaces the "*" one
        assert story.sql(
            "select limit_value from marts.fct_budget_status where customer_id = 'cus_globex'"
            " and budget_key = 'monthly_spend' and is_current"
        ) == [(100000,)]
        assert (globex(api)["access"], globex(api)["reasons"]) == ("block", ["token_cap: 12000 of 10000 token (120%)"])

        # 2. Nothing new: nothing sent.
        requests, _, _ = story.run()
        assert requests == []
        assert globex(api)["access"] == "block"

        # 3. A re-sent event and quarantined lines, each enough to take initech past 80 % and 100 % if it counted,
        #    and a negative correction that brings globex to 9000 tokens (90 %).
        write_log(
            raw,
            "late.jsonl",
            [
                tokens("i1", "2026-10-04", "cus_initech", 5000),  # the same event_id again: a duplicate
                tokens("i2", "2026-10-34", "cus_initech", 5000),  # invalid_timestamp
                tokens("i3", "2026-10-06", "cus_initech", 5000, environment="live"),  # wrong_environment
                tokens("i4", "2026-10-06", "cus_initech", "lots"),  # invalid_value
                {
                    "event_id": "i5",
                    "timestamp": "2026-10-06T10:00:00Z",
                    "action": "inference",
                    "metadata": {"tokens": 5000},
                },  # missing_field: customer_id
                tokens("g2", "2026-10-12", "cus_globex", -3000),
            ],
        )
        # killed once the receiver has answered the alert, before the outbox records it
        sent, started, _ = story.run(crash="alerts:after_send")
        assert [r.answered for r in sent] == [204]
        assert story.sql("select alert_type, status, attempts from ops.budget_alerts where sequence = 2") == [
            ("budget.threshold_cleared", "pending", 1)
        ]
        assert globex(api)["access"] == "block"  # the killed run published nothing
        requests, _, ended = story.run()  # sends it again: same id, same body, and nothing else
        assert [(r.msg_id, r.body) for r in requests] == [(sent[0].msg_id, sent[0].body)]
        assert receiver.acted_on().count(sent[0].msg_id) == 1
        assert story.sql("select count(*) from marts.rpt_duplicate_events where event_id = 'i1'") == [(1,)]
        assert sorted(r for (r,) in story.sql("select reason from marts.rpt_quarantined_events")) == [
            "invalid_timestamp",
            "invalid_value",
            "missing_field",
            "wrong_environment",
        ]
        cleared = accepted(requests)
        as_of = cleared[0]["as_of"]  # the killed run's: the body was fixed when the alert was made
        assert started.replace(microsecond=0) <= utc(as_of) <= ended
        assert cleared == [
            body("cleared", "token_cap", "cus_globex", 100, "9000", "10000", "token", "allow", OCTOBER, as_of)
        ]
        assert (globex(api)["access"], globex(api)["reasons"]) == ("allow", [])

        # 4. November: each budget starts over at 0. acme's 6001 tokens = 4000.5, billed 4001 cents: 80 % only.
        #    globex's 5000 tokens are half its cap.
        story.clock("2026-11-05T00:00:00Z")
        write_log(
            raw,
            "november.jsonl",
            [tokens("a3", "2026-11-02", "cus_acme", 6001), tokens("g3", "2026-11-02", "cus_globex", 5000)],
        )
        requests, started, ended = story.run()
        november = accepted(requests)
        as_of = november[0]["as_of"]
        assert started.replace(microsecond=0) <= utc(as_of) <= ended
        assert november == [
            body("reached", "monthly_spend", "cus_acme", 80, "4001", "5000", "cents", "allow", NOVEMBER, as_of)
        ]
        assert len(requests) == 1
        answer = globex(api)
        assert answer["access"] == "allow"
        assert {
            "key": "token_cap",
            "used": "5000",
            "limit": "10000",
            "percent": "50",
            "unit": "token",
            "period_start": NOVEMBER[0],
            "period_end": NOVEMBER[1],
        } in answer["budgets"]
    finally:
        server.terminate()
        _, server_log = server.communicate(timeout=30)

    # Every alert delivered, each acted on once: the first after 4 attempts, the cleared one sent by the killed run
    # and again by the next.
    assert len(receiver.acted_on()) == 6
    attempts = dict.fromkeys(receiver.acted_on(), 1) | {first_id: 4, sent[0].msg_id: 2}
    assert dict(story.sql("select alert_id, delivery_state from marts.rpt_budget_alerts")) == dict.fromkeys(
        receiver.acted_on(), "delivered"
    )
    assert dict(story.sql("select alert_id, attempts from marts.rpt_budget_alerts")) == attempts
    # Stripe's billing alert of the quantity budget fired in October, as our 100 % alert did.
    assert story.sql(
        "select customer_id, budget_key, period_start::date::varchar, local_used, limit_value, stripe_value, status"
        " from marts.rpt_stripe_budget_alerts"
    ) == [("cus_globex", "token_cap", "2026-10-01", 12000, 10000, 12000, "match")]
    # The signing key and the API token reach no output.
    for output in [*story.runs.outputs, server_log]:
        assert SECRET.removeprefix("whsec_") not in output and TOKEN not in output

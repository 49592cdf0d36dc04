"""A quarantined line says what was wrong in `reason_detail`, beside its stable `reason` code: which field is
missing, which field is invalid and how, which timestamp, environment, customer or action was refused."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.output.conftest import built_warehouse

CONTRACT = """
environment: test
currency: usd
meters:
  - {key: tokens, action: use, value: value, aggregation: sum, price: {model: per_unit, unit_amount_decimal: "1"}}
customers:
  - {id: cus_a, billing_anchor: "2026-10-01T00:00:00Z"}
"""
TS = "2026-10-05T00:00:00Z"


def line(**fields) -> dict:
    base = {"event_id": "e", "timestamp": TS, "customer_id": "cus_a", "action": "use", "value": 1}
    return {k: v for k, v in {**base, **fields}.items() if v is not ...}  # `...` leaves the field out


LINES = [
    (line(event_id="no-customer", customer_id=...), "missing_field", "missing or null: customer_id"),
    (line(event_id="null-action", action=None, timestamp=...), "missing_field", "missing or null: timestamp, action"),
    (line(event_id=7), "invalid_field", "event_id is a JSON number, not a string"),
    (
        line(event_id="bad-fields", customer_id="", action="x" * 101),
        "invalid_field",
        "customer_id is empty; action has 101 characters, more than 100",
    ),
    (
        line(event_id="no-offset", timestamp="2026-10-05T00:00:00"),
        "invalid_timestamp",
        'timestamp "2026-10-05T00:00:00" is not an RFC 3339 time with an offset (2026-10-05T10:00:00Z) nor Unix seconds',
    ),
    (line(event_id="live", environment="live"), "wrong_environment", 'environment "live", the contract says test'),
    (
        line(event_id="stranger", customer_id="cus_zz"),
        "unknown_customer",
        'customer_id "cus_zz" is not in the contract',
    ),
    (line(event_id="train", action="train"), "unmetered_action", 'no meter of the contract counts the action "train"'),
]


@pytest.fixture(scope="module")
def quarantined(dbt, tmp_path_factory):
    wh = built_warehouse(
        dbt,
        tmp_path_factory,
        CONTRACT,
        [fields for fields, _, _ in LINES],
        datetime(2026, 11, 2, tzinfo=UTC),
        "--select",
        "+rpt_quarantined_events",
    )
    return wh.query("select line_number, reason, reason_detail from marts.rpt_quarantined_events order by 1")


def test_every_quarantined_line_says_what_was_wrong_beside_its_reason_code(quarantined):
    assert quarantined == [(n, reason, detail) for n, (_, reason, detail) in enumerate(LINES, start=1)]

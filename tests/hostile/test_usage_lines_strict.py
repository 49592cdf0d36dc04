"""Hostile usage lines: keys given twice, numbers that are not JSON, our number marker in user data,
impossible UTC offsets. Landed and built with the real dbt project; each line is either metered or
quarantined with its reason, never counted with a value it does not hold."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.pipeline.conftest import Warehouse, dbt  # noqa: F401  (the session's dbt project)

CONTRACT = """
environment: test
currency: usd
meters:
  - {key: tokens, action: use, value: metadata.tokens, aggregation: sum, price: {model: per_unit, unit_amount_decimal: "1"}}
customers:
  - {id: cus_a, billing_anchor: "2026-10-01T00:00:00Z"}
"""
TS = '"2026-10-05T00:00:00Z"'


def line(event_id: str, tokens: str = "1", *, timestamp: str = TS, extra: str = "") -> str:
    """A usage line written by hand, so that its JSON can be anything."""
    return (
        f'{{"event_id":"{event_id}","timestamp":{timestamp},"customer_id":"cus_a","action":"use",'
        f'"metadata":{{"tokens":{tokens}}}{extra}}}'
    )


LINES = {
    # keys given twice, at any depth
    "dup-top": line("dup-top", extra=',"metadata":{"tokens":1000}'),
    "dup-nested": line("dup-nested", tokens='1,"tokens":1000'),
    "dup-escaped": line("dup-escaped", tokens='1,"\\u0074okens":1000'),
    "dup-in-array": line("dup-in-array", extra=',"items":[{"sku":"a","sku":"b"}]'),
    "same-key-in-two-objects": line("same-key-in-two-objects", "2", extra=',"other":{"tokens":3}'),
    # numbers that are not JSON
    **{
        f"num-{i}": line(f"num-{i}", text)
        for i, text in enumerate(["01", "-01", "00", "+1", ".5", "1.", "NaN", "Infinity", "-Infinity", "0x1F", "[01]"])
    },
    "num-ok-0": line("num-ok-0", "0"),
    "num-ok-exp": line("num-ok-exp", "1e05"),
    "num-ok-frac": line("num-ok-frac", "0.25"),
    # our number marker, written by a user
    "marker-text": line("marker-text", '{"#num":"abc"}'),
    "marker-number": line("marker-number", '{"#num":"5"}'),
    "marker-escaped": line("marker-escaped", '{"\\u0023num":"5"}'),
    "marker-timestamp": line("marker-timestamp", timestamp='{"#num":"1791000000"}'),
    "marker-elsewhere": line("marker-elsewhere", "7", extra=',"tag":{"#num":"abc"}'),
    # impossible offsets and times
    "offset-99:99": line("offset-99:99", timestamp='"2026-10-05T00:00:00+99:99"'),
    "offset-00:60": line("offset-00:60", timestamp='"2026-10-05T00:00:00+00:60"'),
    "offset-24:00": line("offset-24:00", timestamp='"2026-10-05T00:00:00+24:00"'),
    "hour-24": line("hour-24", timestamp='"2026-10-05T24:00:00Z"'),
    "offset-ok-east": line("offset-ok-east", timestamp='"2026-10-05T00:00:00+23:59"'),
    "offset-ok-west": line("offset-ok-west", timestamp='"2026-10-05T00:00:00-14:00"'),
}


@pytest.fixture(scope="module")
def built(dbt, tmp_path_factory):  # noqa: F811
    root = tmp_path_factory.mktemp("hostile_lines")
    (root / "state").mkdir()
    wh = Warehouse(state_dir=root / "state", raw_dir=root / "raw")
    wh.write_contract(CONTRACT)
    wh.add_file("lines.jsonl", list(LINES.values()))
    wh.land(datetime(2026, 11, 2, tzinfo=UTC))
    dbt.run(wh.state_dir, "build", "--exclude", "tag:reconciliation")
    outcomes = wh.query(
        "select line_number, reason from marts.rpt_quarantined_events union all "
        "select line_number, 'metered ' || coalesce(value::varchar, 'without a value') from marts.fct_metered_events"
    )
    # every line read is metered or quarantined, once
    assert sorted(n for n, _ in outcomes) == list(range(1, len(LINES) + 1))
    wh.outcome = dict(outcomes)
    return wh


def outcome(built, event_id: str) -> str:
    return built.outcome[list(LINES).index(event_id) + 1]


def test_keys_given_twice_at_any_depth_are_quarantined(built):
    for event_id in ("dup-top", "dup-nested", "dup-escaped", "dup-in-array"):
        assert outcome(built, event_id) == "duplicate_key", event_id
    assert outcome(built, "same-key-in-two-objects") == "metered 2.000000000000"


def test_numbers_that_are_not_json_are_quarantined(built):
    for i in range(11):
        assert outcome(built, f"num-{i}") == "invalid_json", LINES[f"num-{i}"]
    assert [outcome(built, e) for e in ("num-ok-0", "num-ok-exp", "num-ok-frac")] == [
        "metered 0.000000000000",
        "metered 100000.000000000000",
        "metered 0.250000000000",
    ]


def test_a_users_number_marker_is_an_object_not_a_number(built):
    for event_id in ("marker-text", "marker-number", "marker-escaped"):
        assert outcome(built, event_id) == "invalid_value", event_id
    assert outcome(built, "marker-timestamp") == "invalid_timestamp"
    assert outcome(built, "marker-elsewhere") == "metered 7.000000000000"
    total = built.query("select quantity from marts.fct_usage_by_period where customer_id = 'cus_a'")
    assert total == [(Decimal("100011.25"),)]  # 2 + 0 + 1e05 + 0.25 + 7 + 1 + 1: nothing from the markers


def test_impossible_utc_offsets_are_quarantined(built):
    for event_id in ("offset-99:99", "offset-00:60", "offset-24:00", "hour-24"):
        assert outcome(built, event_id) == "invalid_timestamp", event_id
    assert outcome(built, "offset-ok-east") == "metered 1.000000000000"
    assert outcome(built, "offset-ok-west") == "metered 1.000000000000"


# --- the duplicate-key screen, fuzzed: objects as lists of (key, value) pairs, keys repeated at will --------------


class Pairs(list):
    """A JSON object written pair by pair, so that a key may come twice."""


KEYS = st.text(alphabet=st.sampled_from(list('ab:" \\{},[]#\u00e9\u2028\t')), max_size=4)
JSON_PAIRS = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-5, 5), KEYS),
    lambda inner: st.lists(inner, max_size=3) | st.lists(st.tuples(KEYS, inner), max_size=4).map(Pairs),
    max_leaves=10,
)


def _write(value, data) -> str:
    colon = data.draw(st.sampled_from([":", " :", ": ", "\t:\n"]))
    comma = data.draw(st.sampled_from([",", ", ", " ,\r\n"]))
    ascii_only = data.draw(st.booleans())
    if isinstance(value, Pairs):
        return (
            "{" + comma.join(json.dumps(k, ensure_ascii=ascii_only) + colon + _write(v, data) for k, v in value) + "}"
        )
    if isinstance(value, list):
        return "[" + comma.join(_write(v, data) for v in value) + "]"
    return json.dumps(value, ensure_ascii=ascii_only)


def _has_a_key_twice(value) -> bool:
    if isinstance(value, Pairs):
        keys = [k for k, _ in value]
        return len(set(keys)) < len(keys) or any(_has_a_key_twice(v) for _, v in value)
    return isinstance(value, list) and any(_has_a_key_twice(v) for v in value)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.lists(st.tuples(KEYS, JSON_PAIRS), max_size=4).map(Pairs), st.data())
def test_the_duplicate_key_screen_misses_no_key_given_twice(document, data):
    import polars as pl

    from metering_dagster.landing.parse import DUPLICATE_KEY_MARK, screen_keys

    text = _write(document, data)
    marked = screen_keys(pl.Series([text])).item()
    assert marked.startswith(DUPLICATE_KEY_MARK) == _has_a_key_twice(document), text

"""Bad input, fuzzed (hypothesis): the event parser (landing: bytes -> lines -> raw.usage_lines) and the
contract loader never crash; every input gets a result or a clear error. Bounded for CI:
METERING_FUZZ_EXAMPLES examples per property (default 150), no deadline, derandomized."""

from __future__ import annotations

import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metering_dagster.contract import Contract, ContractError, load_contract
from metering_dagster.landing.land import _insert_lines, read_lines
from metering_dagster.warehouse import ensure_source_tables
from tests.conftest import DEMO_DIR

FUZZ = settings(
    max_examples=int(os.environ.get("METERING_FUZZ_EXAMPLES", "150")),
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
NOW = datetime(2026, 11, 2, tzinfo=UTC)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.text(max_size=20),
    st.decimals(allow_nan=False, allow_infinity=False, places=6).map(lambda d: float(d) if abs(d) < 1e12 else 0),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
events = st.fixed_dictionaries(
    {
        "event_id": st.text(min_size=1, max_size=30),
        "timestamp": st.one_of(st.integers(), st.text(max_size=30)),
        "customer_id": st.text(max_size=10),
        "action": st.text(max_size=10),
    },
    optional={"value": json_values, "metadata": json_values, "environment": json_values},
)


def _mutate(text: str, data) -> str:
    if not text or not data.draw(st.booleans()):
        return text
    i = data.draw(st.integers(0, len(text)))
    junk = data.draw(st.sampled_from(["", ",", "}", "{", '"', "\\", "NaN", "1e999", "\x00", "\u2028", "//", " "]))
    cut = data.draw(st.integers(0, 3))
    return text[:i] + junk + text[i + cut :]


def _land(lines_bytes: bytes):
    con = duckdb.connect()
    try:
        ensure_source_tables(con)
        frame, physical, blank = read_lines(lines_bytes, gzipped=False)
        with tempfile.TemporaryDirectory() as tmp:
            _insert_lines(con, frame, "fuzz.jsonl", 1, NOW, Path(tmp) / "b.parquet")
        rows = con.execute(
            "select line_number, raw_line, is_json_object, event_id_type, event_id, landing_problem "
            "from raw.usage_lines order by line_number"
        ).fetchall()
        return rows, physical, blank
    finally:
        con.close()


@pytest.mark.slow  # a fuzz or soak under random faults: out of make test-fast
@FUZZ
@given(st.data())
def test_event_parser_never_crashes_and_accounts_for_every_line(data):
    raw_lines = data.draw(
        st.lists(
            st.one_of(
                events.map(json.dumps), st.text(max_size=40), st.binary(max_size=40).map(lambda b: b.decode("latin-1"))
            ),
            min_size=0,
            max_size=8,
        )
    )
    lines = [_mutate(line, data).replace("\n", " ") for line in raw_lines]
    content = "\n".join(lines).encode("utf-8") + (b"\n" if lines else b"")
    if data.draw(st.booleans()):
        content += data.draw(st.binary(max_size=8)).replace(b"\n", b"") + b"\n"  # maybe not UTF-8
    rows, physical, blank = _land(content)
    assert physical == len(rows) + blank  # every line read is landed, quarantined or blank
    for _line_number, raw_line, is_object, id_type, event_id, problem in rows:
        assert isinstance(is_object, bool)
        if problem is not None:
            assert problem in ("invalid_utf8", "line_too_long", "empty_file", "duplicate_key") and not is_object
            continue
        try:
            parsed = json.loads(raw_line, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
        except (ValueError, RecursionError):
            parsed = ValueError
        if parsed is ValueError:
            assert not is_object, raw_line  # never accept what JSON does not
        if is_object and id_type == "string":
            assert isinstance(parsed, dict) and parsed.get("event_id") == event_id


@pytest.mark.slow  # a fuzz or soak under random faults: out of make test-fast
@FUZZ
@given(events)
def test_valid_events_parse_with_their_fields(event):
    rows, physical, blank = _land((json.dumps(event) + "\n").encode())
    ((line_number, raw_line, is_object, id_type, event_id, problem),) = rows
    assert (is_object, id_type, event_id, problem) == (True, "string", event["event_id"], None)


DEMO_CONTRACT = yaml.safe_load((DEMO_DIR / "metering.yml").read_text())
yaml_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.text(max_size=12),
        st.sampled_from(["inf", "1.5", "-1", "", "sum", "graduated"]),
    ),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


def _paths(doc, prefix=()):
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _paths(v, prefix + (i,))


ALL_PATHS = [p for p in _paths(DEMO_CONTRACT) if p]


def _check_contract(text: str, tmp_dir: Path) -> None:
    path = tmp_dir / "metering.yml"
    path.write_text(text)
    try:
        result = load_contract(path)
    except ContractError as error:
        assert error.errors and all(isinstance(e, str) and e for e in error.errors)
        assert all("metering.yml" in e for e in error.errors), error.errors  # the file is named
    else:
        assert isinstance(result, Contract)


@FUZZ
@given(data=st.data())
def test_contract_loader_names_every_error_or_loads(data, tmp_path):
    import copy

    doc = copy.deepcopy(DEMO_CONTRACT)
    for _ in range(data.draw(st.integers(1, 4))):
        path = data.draw(st.sampled_from(ALL_PATHS))
        target = doc
        try:
            for key in path[:-1]:
                target = target[key]
            if data.draw(st.booleans()):
                target[path[-1]] = data.draw(yaml_values)
            elif isinstance(target, dict):
                target.pop(path[-1], None)
        except (KeyError, IndexError, TypeError):
            continue
    _check_contract(yaml.safe_dump(doc, sort_keys=False), tmp_path)


@FUZZ
@given(text=st.text(max_size=200))
def test_contract_loader_survives_any_text(text, tmp_path):
    _check_contract(text, tmp_path)

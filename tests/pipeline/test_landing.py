"""Landing: manifest with content hashes, gz and subfolders, path order, exact numbers, one run id per call."""

from __future__ import annotations

import os
import random
import re
from datetime import UTC, datetime

import duckdb
import polars as pl
import pytest

from metering_dagster.landing.parse import exact_json, may_be_lenient, strict_json_ok

from .conftest import event


def test_lands_new_files_in_path_order_once(warehouse):
    warehouse.add_file("b.jsonl", [event("e2", 1, "c", "a"), "", event("e3", 1, "c", "a")])
    warehouse.add_file("a/x.jsonl.gz", [event("e1", 1, "c", "a")])
    first = warehouse.land(datetime(2026, 10, 2, tzinfo=UTC))
    assert first.landing_run_id == 1
    assert [(f.source_file, f.lines_read, f.lines_landed) for f in first.landed] == [
        ("a/x.jsonl.gz", 1, 1),
        ("b.jsonl", 3, 2),  # the blank line is read, not landed
    ]
    rows = warehouse.query(
        "select landing_run_id, source_file, line_number, event_id, landed_at from raw.usage_lines "
        "order by source_file, line_number"
    )
    assert [r[:4] for r in rows] == [(1, "a/x.jsonl.gz", 1, "e1"), (1, "b.jsonl", 1, "e2"), (1, "b.jsonl", 3, "e3")]
    assert rows[0][4] == datetime(2026, 10, 2, tzinfo=UTC)

    # a second call skips what was landed, reports a changed file without re-reading it
    warehouse.add_file("b.jsonl", [event("e2", 1, "c", "a"), event("e9", 1, "c", "a")])
    warehouse.add_file("c.jsonl", [event("e4", 1, "c", "a")])
    second = warehouse.land()
    assert second.landing_run_id == 2
    assert [f.source_file for f in second.landed] == ["c.jsonl"]
    assert second.skipped == ("a/x.jsonl.gz",)
    assert [c.source_file for c in second.changed] == ["b.jsonl"]
    assert warehouse.query("select count(*) from raw.usage_lines where event_id = 'e9'") == [(0,)]
    manifest = warehouse.query("select source_file, line_count, landing_run_id from raw.landed_files order by 1")
    # b.jsonl's refusal is one more line read of it (a file_changed_after_landing row), landed by run 2
    assert manifest == [("a/x.jsonl.gz", 1, 1), ("b.jsonl", 4, 2), ("c.jsonl", 1, 2)]


def test_a_landed_file_is_read_again_only_when_its_size_or_time_changed(warehouse):
    """A run with nothing new does not re-read all history; a landed file whose size or time moved is hashed."""
    now = datetime.now(UTC)
    an_hour_ago = int(now.timestamp() - 3600) * 10**9
    old = warehouse.raw_dir / "old.jsonl"
    warehouse.add_file("old.jsonl", [event("e1", 1, "c", "a")])
    os.utime(old, ns=(an_hour_ago, an_hour_ago))
    fresh = warehouse.raw_dir / "fresh.jsonl"
    warehouse.add_file("fresh.jsonl", [event("f1", 1, "c", "a")])  # written just now: "racily clean"
    fresh_mtime = fresh.stat().st_mtime_ns
    assert sorted(f.source_file for f in warehouse.land(now=now).landed) == ["fresh.jsonl", "old.jsonl"]
    assert warehouse.query("select source_file, file_mtime_ns from raw.landed_files order by 1") == [
        ("fresh.jsonl", fresh_mtime),
        ("old.jsonl", an_hour_ago),
    ]

    # Same length, put back to the recorded time: the old file is not read (the price of not re-reading
    # history is that this rewrite goes unseen); the fresh one was modified too close to its landing for its
    # time to prove anything, so it is hashed and its change refused.
    for path, mtime in ((old, an_hour_ago), (fresh, fresh_mtime)):
        path.write_text(path.read_text().replace('"e1"', '"e2"').replace('"f1"', '"f2"'))
        os.utime(path, ns=(mtime, mtime))
    second = warehouse.land(now=now)
    assert second.skipped == ("old.jsonl",)
    assert [c.source_file for c in second.changed] == ["fresh.jsonl"]

    # a new modification time: read, hashed, refused as changed
    os.utime(old, ns=(an_hour_ago + 10**9, an_hour_ago + 10**9))
    assert [c.source_file for c in warehouse.land(now=now).changed] == ["fresh.jsonl", "old.jsonl"]
    assert warehouse.query("select count(*) from raw.usage_lines where event_id in ('e2', 'f2')") == [(0,)]


def test_numbers_keep_their_exact_text(warehouse):
    warehouse.add_file(
        "n.jsonl",
        [
            '{"event_id":"e","timestamp":1790000000,"customer_id":"c","action":"a",'
            '"value":0.30000000000000004444,"metadata":{"big":123456789012345678901234567890,'
            '"s":"quoted \\"1.5\\" stays","e":-1.5E+3}}'
        ],
    )
    warehouse.land()
    payload, ts_type, ts_text = warehouse.query(
        "select payload::varchar, timestamp_type, timestamp_text from raw.usage_lines"
    )[0]
    assert '"value":{"#num":"0.30000000000000004444"}' in payload
    assert '{"#num":"123456789012345678901234567890"}' in payload
    assert '"s":"quoted \\"1.5\\" stays"' in payload
    assert '{"#num":"-1.5E+3"}' in payload
    assert (ts_type, ts_text) == ("number", "1790000000")


def test_not_json_and_lenient_json_are_not_objects(warehouse):
    warehouse.add_file("j.jsonl", ["not json", '{"a":1,}', '{"a":NaN}', "[1,2]", '{"event_id":"ok"}'])
    warehouse.land()
    assert warehouse.query("select line_number, is_json_object from raw.usage_lines order by 1") == [
        (1, False),
        (2, False),
        (3, False),
        (4, False),
        (5, True),
    ]


def _age(path, seconds=3600):
    import os
    import time

    past = time.time() - seconds
    os.utime(path, (past, past))


def test_files_still_being_written_wait_until_complete_or_settled(warehouse, monkeypatch):
    import gzip

    monkeypatch.setenv("METERING_LANDING_SETTLE_SECONDS", "60")
    warehouse.raw_dir.mkdir(parents=True)
    partial = warehouse.raw_dir / "partial.jsonl"
    partial.write_text('{"event_id":"p1"}\n{"event_id":"p2"')  # no final newline: being written
    cut = warehouse.raw_dir / "cut.jsonl.gz"
    cut.write_bytes(
        gzip.compress(b"".join(b'{"event_id":"g%d"}\n' % (i * 7919 % 100003) for i in range(3000)), mtime=0)[:-200]
    )  # stream cut short
    (warehouse.raw_dir / "empty.jsonl").write_bytes(b"")
    (warehouse.raw_dir / "x.jsonl.part").write_text("ignored: not a log name yet\n")
    first = warehouse.land()
    assert sorted(f.source_file for f in first.incomplete) == ["cut.jsonl.gz", "empty.jsonl", "partial.jsonl"]
    assert first.landed == () and warehouse.query("select count(*) from raw.landed_files") == [(0,)]

    # the writer finishes: the file lands whole
    partial.write_text('{"event_id":"p1"}\n{"event_id":"p2"}\n')
    second = warehouse.land()
    assert [(f.source_file, f.lines_read, f.lines_landed) for f in second.landed] == [("partial.jsonl", 2, 2)]

    # files that never complete are read as they are once settled, and accounted for in quarantine
    _age(cut)
    _age(warehouse.raw_dir / "empty.jsonl")
    third = warehouse.land()
    by_file = {f.source_file: f for f in third.landed}
    assert by_file["cut.jsonl.gz"].lines_quarantined == 1 and by_file["cut.jsonl.gz"].lines_landed > 0
    assert (by_file["empty.jsonl"].lines_read, by_file["empty.jsonl"].lines_quarantined) == (1, 1)
    problems = dict(
        warehouse.query("select source_file, landing_problem from raw.usage_lines where landing_problem is not null")
    )
    assert problems == {"cut.jsonl.gz": "corrupt_gzip", "empty.jsonl": "empty_file"}


def test_bad_bytes_are_kept_escaped_and_flagged_never_replaced(warehouse):
    warehouse.raw_dir.mkdir(parents=True)
    big = '{"event_id":"big","pad":"' + "x" * (10 * 1024 * 1024) + '"}'
    (warehouse.raw_dir / "mixed.jsonl").write_bytes(
        b'{"event_id":"ok1"}\n{"event_id":"caf\xe9"}\n\n' + big.encode() + b'\n{"event_id":"ok2"}\n'
    )
    (warehouse.raw_dir / "notgzip.jsonl.gz").write_bytes(b"not gzip at all")
    result = warehouse.land()
    files = {f.source_file: f for f in result.landed}
    m = files["mixed.jsonl"]
    assert (m.lines_read, m.lines_landed, m.lines_quarantined, m.lines_blank) == (5, 2, 2, 1)
    rows = warehouse.query(
        "select line_number, landing_problem, raw_line, is_json_object from raw.usage_lines "
        "where source_file = 'mixed.jsonl' order by 1"
    )
    assert [(r[0], r[1]) for r in rows] == [(1, None), (2, "invalid_utf8"), (4, "line_too_long"), (5, None)]
    assert rows[1][2] == '{"event_id":"caf\\xe9"}' and rows[1][3] is False  # the bad byte, escaped
    assert len(rows[2][2]) < 2048 and "10485" in rows[2][2]
    n = files["notgzip.jsonl.gz"]
    assert (n.lines_read, n.lines_landed, n.lines_quarantined) == (1, 0, 1)
    # read = landed + quarantined + blank, per file, in the manifest too
    assert warehouse.query(
        """select count(*) from raw.landed_files f
           where line_count <> lines_blank + (select count(*) from raw.usage_lines u where u.source_file = f.source_file)"""
    ) == [(0,)]


def test_landing_problems_flow_into_quarantine_with_their_reason(warehouse, dbt):
    from .test_dbt_models import CONTRACT

    warehouse.write_contract(CONTRACT)
    warehouse.raw_dir.mkdir(parents=True)
    (warehouse.raw_dir / "bad.jsonl").write_bytes(b'{"event_id":"\xff"}\n' + b"y" * (2 * 1024 * 1024) + b"\n")
    (warehouse.raw_dir / "empty.jsonl").write_bytes(b"")
    _age(warehouse.raw_dir / "empty.jsonl")
    (warehouse.raw_dir / "broken.jsonl.gz").write_bytes(b"\x1f\x8b garbage")
    warehouse.land()
    dbt.run(warehouse.state_dir, "build", "--exclude", "tag:reconciliation")
    reasons = warehouse.query("select source_file, line_number, reason from marts.rpt_quarantined_events order by 1, 2")
    assert reasons == [
        ("bad.jsonl", 1, "invalid_utf8"),
        ("bad.jsonl", 2, "line_too_long"),
        ("broken.jsonl.gz", 1, "corrupt_gzip"),
        ("empty.jsonl", 1, "empty_file"),
    ]


def test_field_columns_for_every_json_type(warehouse):
    warehouse.add_file(
        "t.jsonl",
        [
            '{"event_id":"a\\"b\\u00e9","timestamp":{"#num":null},"customer_id":true,"action":[1],"environment":null}',
            '{"event_id":{"x":1},"timestamp":-1.5E+3,"customer_id":{"#num":"7","y":2},"action":false}',
        ],
    )
    warehouse.land()
    assert warehouse.query(
        "select event_id_type, event_id, timestamp_type, timestamp_text, customer_id_type, customer_id, "
        "action_type, action, environment_type, environment from raw.usage_lines order by line_number"
    ) == [
        # a user's {"#num": ...} is an object, never taken for landing's number marker
        ("string", 'a"bé', "object", None, "boolean", "true", "array", None, "null", None),
        ("object", None, "number", "-1.5E+3", "object", None, "boolean", "false", None, None),
    ]


def test_unicode_digits_are_not_json_numbers(warehouse):
    warehouse.add_file("u.jsonl", ['{"event_id":"e","timestamp":\u0663}', '{"event_id":"e","timestamp":3}'])
    warehouse.land()
    assert warehouse.query("select line_number, is_json_object from raw.usage_lines order by 1") == [
        (1, False),
        (2, True),
    ]


def test_many_small_files_and_a_big_one_land_in_chunks_with_their_own_lines(warehouse, monkeypatch):
    from metering_dagster.landing import land

    monkeypatch.setattr(land, "BATCH_ROWS", 2)
    monkeypatch.setattr(land, "CHUNK_ROWS", 5)
    for i in range(4):
        warehouse.add_file(f"small-{i}.jsonl", [event(f"s{i}-{n}", n, "c", "a") for n in range(i)] + [""])
    warehouse.add_file("z-big.jsonl", [event(f"b-{n}", n, "c", "a") for n in range(12)] + ["not json"])
    result = warehouse.land()
    assert [(f.source_file, f.lines_read, f.lines_landed, f.lines_blank) for f in result.landed] == [
        ("small-0.jsonl", 1, 0, 1),
        ("small-1.jsonl", 2, 1, 1),
        ("small-2.jsonl", 3, 2, 1),
        ("small-3.jsonl", 4, 3, 1),
        ("z-big.jsonl", 13, 13, 0),
    ]
    rows = warehouse.query(
        "select source_file, line_number, event_id, timestamp_text, is_json_object from raw.usage_lines"
    )
    expected = [(f"small-{i}.jsonl", n + 1, f"s{i}-{n}", str(n), True) for i in range(4) for n in range(i)]
    expected += [("z-big.jsonl", n + 1, f"b-{n}", str(n), True) for n in range(12)]
    assert rows == expected + [("z-big.jsonl", 13, None, None, False)]  # inserted in file and line order
    assert warehouse.query("select count(*) from raw.landed_files") == [(5,)]


@pytest.mark.parametrize("block_bytes", [1, 2, 5, 64])
def test_a_file_split_in_blocks_reads_as_in_one(monkeypatch, block_bytes):
    """Big files are split a block at a time (memory): the lines must not depend on where blocks end."""
    from metering_dagster.landing import land

    contents = [
        '\ufeff{"a": 1}\r\n\r\n  \n{"b": "é€😀"}\n\n\nlast line without newline'.encode(),
        b"\n",
        b"\n\n",
        b"x",
        b"",
        "é\r\n".encode() * 7,
    ]
    whole = [land.read_lines(content, gzipped=False) for content in contents]
    monkeypatch.setattr(land, "SPLIT_BLOCK_BYTES", block_bytes)
    for content, (lines, physical, blank) in zip(contents, whole):
        split_lines, split_physical, split_blank = land.read_lines(content, gzipped=False)
        assert split_lines.to_dicts() == lines.to_dicts() and (split_physical, split_blank) == (physical, blank)


_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|(-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)')


def _exact_json_token_by_token(line: str) -> str:
    """The rewrite spelled out: scan strings and numbers left to right, wrap each number."""
    out, i = [], 0
    while i < len(line):
        m = _TOKEN.match(line, i)
        if m is None:
            out.append(line[i])
            i += 1
            continue
        out.append(f'{{"#num":"{m.group(1)}"}}' if m.group(1) else m.group(0))
        i = m.end()
    return "".join(out)


def _mutated_lines(seed: int, n: int) -> list[str]:
    rng = random.Random(seed)
    base = [
        '{"event_id":"e-1","timestamp":1790000000,"customer_id":"c:5,6","action":"a","value":-0.5e-3,"m":[1,{"x":"y\\"2"}]}',
        '{"a":"x1y","b":[true,false,null],"c":{"d":12345678901234567890}}',
        '{"s":"a: NaN, b","t":"], }","n":1e400}',
    ]
    # \x02: exact_json's mark after a number (a raw one is never JSON)
    junk = list('{}[]:,"\\-+.eE0123456789 \tnN\x02') + [
        "NaN",
        "-Infinity",
        "inf",
        "true",
        "null",
        '"x"',
        "1e999",
        "\u0663",
    ]
    lines = []
    for _ in range(n):
        line = rng.choice(base)
        for _ in range(rng.randint(0, 3)):
            i = rng.randint(0, len(line))
            line = line[:i] + rng.choice(junk) + line[i + rng.randint(0, 3) :]
        lines.append(line)
    return lines


def test_exact_json_matches_the_token_by_token_rewrite_or_both_are_rejected():
    lenient = [
        '{"a":1,}',
        '{"a":[1 , ]}',
        '{"a":NaN}',
        '{"a": -Infinity}',
        '{"a":[inf]}',
        '{"a":{"b":nAn}}',
        '{"a":"x",}',
    ]
    lines = (
        _mutated_lines(7, 3000)
        + lenient
        + ['-{"a":1}', '{"a":-x,"b":"1"}', '{"a":"x1y","b":-z}', '{"a":"open 1}', "5", ""]
    )
    frame = pl.DataFrame({"line": lines}).with_columns(
        exact_json(pl.col("line")).alias("exact"),
        strict_json_ok(pl.col("line")).alias("strict"),
        may_be_lenient(pl.col("line")).alias("lenient"),
    )
    con = duckdb.connect()

    def json_object(text: str) -> bool:  # what landing asks DuckDB (yyjson, lenient)
        return con.execute("select json_valid($t) and json_type($t) = 'OBJECT'", {"t": text}).fetchone()[0]

    events, checked = 0, 0
    for line, exact, strict, flagged in frame.iter_rows():
        reference = _exact_json_token_by_token(line)
        if exact != reference:  # only for a line that is not JSON: neither rewrite lands as an object
            assert not (strict and (json_object(exact) or json_object(reference))), line
        elif json_object(exact):
            assert strict or flagged, line  # every lenient line yyjson accepts is checked in full
            events += strict
            checked += not strict
    assert events > 500 and checked >= len(lenient)

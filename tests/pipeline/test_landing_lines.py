"""Landing's reader: every line keeps its file, its 1-based number and its text, whatever comes before it."""

from __future__ import annotations

import gzip

import pytest

from metering_dagster.landing.land import MAX_LINE_BYTES

BIG = "123456789012345678901234567890123"  # 33 digits: a double keeps 17
FRACTION = "-0.100000000000000000000000000000000001"


def _content() -> bytes:
    long_line = b'{"event_id":"long","pad":"' + b"x" * MAX_LINE_BYTES + b'"}'
    return b"".join(
        [
            b'{"event_id":"e1","timestamp":1790000000,"customer_id":"c","action":"a"}\r\n',  # CRLF
            b"\r\n",  # blank (CRLF)
            b'{"event_id":"caf\xe9"}\n',  # not UTF-8
            b"\n",  # blank
            b" \t \n",  # blank (whitespace only)
            f'{{"event_id":"e6","timestamp":{BIG},"value":{FRACTION}}}\r\n'.encode(),
            long_line + b"\n",
            '{"event_id":"e8","note":"é€😀"}\n'.encode(),
            b'{"event_id":"e9"}',  # the last line has no newline
        ]
    )


@pytest.mark.parametrize("name", ["lines.jsonl", "lines.jsonl.gz"])
def test_line_numbers_are_exact_after_blank_lines_crlf_bad_bytes_and_long_lines(warehouse, monkeypatch, name):
    monkeypatch.setenv("METERING_LANDING_SETTLE_SECONDS", "0")  # a file without a final newline is read as it is
    content = _content()
    if name.endswith(".gz"):  # two gzip members, split inside a line: the text is their concatenation
        content = gzip.compress(content[:150], mtime=0) + gzip.compress(content[150:], mtime=0)
    warehouse.raw_dir.mkdir(parents=True)
    (warehouse.raw_dir / name).write_bytes(content)

    (landed,) = warehouse.land().landed
    assert (landed.lines_read, landed.lines_landed, landed.lines_quarantined, landed.lines_blank) == (9, 4, 2, 3)
    rows = warehouse.query(
        "select line_number, landing_problem, event_id, timestamp_text, raw_line, payload::varchar "
        "from raw.usage_lines where source_file = ? order by line_number",
        [name],
    )
    assert [(r[0], r[1], r[2]) for r in rows] == [
        (1, None, "e1"),
        (3, "invalid_utf8", None),
        (6, None, "e6"),
        (7, "line_too_long", None),
        (8, None, "e8"),
        (9, None, "e9"),
    ]
    by_number = {r[0]: r for r in rows}
    assert by_number[1][4].endswith('"action":"a"}')  # the CR is not part of the line
    assert by_number[3][4] == '{"event_id":"caf\\xe9"}'
    assert by_number[6][3] == BIG
    assert f'"value":{{"#num":"{FRACTION}"}}' in by_number[6][5]
    assert by_number[8][4] == '{"event_id":"e8","note":"é€😀"}'
    assert by_number[9][4] == '{"event_id":"e9"}'
    assert warehouse.query("select line_count, lines_blank from raw.landed_files") == [(9, 3)]


def test_big_integers_and_long_fractions_stay_exact_in_every_field(warehouse):
    digits = "9" * 40
    warehouse.add_file(
        "n.jsonl",
        [
            f'{{"event_id":{digits},"timestamp":{digits}.{digits}e-40,"customer_id":-{digits},"action":"a"}}',
            '{"event_id":"x","timestamp":1E+400,"customer_id":-0.0,"action":true,"environment":null}',
        ],
    )
    warehouse.land()
    rows = warehouse.query(
        "select event_id_type, event_id, timestamp_type, timestamp_text, customer_id_type, customer_id, "
        "action_type, action, environment_type, environment from raw.usage_lines order by line_number"
    )
    assert rows == [
        ("number", digits, "number", f"{digits}.{digits}e-40", "number", f"-{digits}", "string", "a", None, None),
        ("string", "x", "number", "1E+400", "number", "-0.0", "boolean", "true", "null", None),
    ]

"""Landing: manifest with content hashes, gz and subfolders, path order, exact numbers, one run id per call."""

from __future__ import annotations

from datetime import datetime, timezone

from .conftest import event


def test_lands_new_files_in_path_order_once(warehouse):
    warehouse.add_file("b.jsonl", [event("e2", 1, "c", "a"), "", event("e3", 1, "c", "a")])
    warehouse.add_file("a/x.jsonl.gz", [event("e1", 1, "c", "a")])
    first = warehouse.land(datetime(2026, 10, 2, tzinfo=timezone.utc))
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
    assert rows[0][4] == datetime(2026, 10, 2, tzinfo=timezone.utc)

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
    assert manifest == [("a/x.jsonl.gz", 1, 1), ("b.jsonl", 3, 1), ("c.jsonl", 1, 2)]


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
        (1, False), (2, False), (3, False), (4, False), (5, True)
    ]


def test_bad_gzip_is_reported_and_retried(warehouse):
    warehouse.raw_dir.mkdir(parents=True)
    (warehouse.raw_dir / "broken.jsonl.gz").write_bytes(b"not gzip")
    result = warehouse.land()
    assert [f.source_file for f in result.failed] == ["broken.jsonl.gz"]
    assert warehouse.query("select count(*) from raw.landed_files") == [(0,)]

"""Hostile settings and paths: a missing raw folder, file names that are not UTF-8, bad tuning values,
customer ids that try to leave the state folder."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime

import pytest

from metering_dagster.landing.land import land_new_files
from metering_dagster.warehouse import connect

NOW = datetime(2026, 11, 2, tzinfo=UTC)


def _event(event_id: str) -> str:
    return json.dumps({"event_id": event_id, "timestamp": "2026-10-05T00:00:00Z", "customer_id": "cus_acme",
                       "action": "llm.completion", "metadata": {"tokens": 1}})


def test_a_missing_raw_folder_stops_landing_and_names_the_folder(tmp_path):
    missing = tmp_path / "no-such-raw"
    con = connect(tmp_path / "warehouse.duckdb")
    try:
        with pytest.raises(Exception, match=f"{missing}.*does not exist.*METERING_RAW_DIR") as info:
            land_new_files(con, missing, now=NOW)
        assert type(info.value).__name__ == "RawFolderMissing"
        assert con.execute("select count(*) from raw.landed_files").fetchone() == (0,)
    finally:
        con.close()


def test_a_file_name_that_is_not_utf8_is_quarantined_and_the_other_files_land(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "good.jsonl").write_text(_event("e1") + "\n")
    bad = os.path.join(os.fsencode(raw), b"caf\xe9-\xff.jsonl")  # a Latin-1 name
    with open(bad, "wb") as f:
        f.write((_event("e2") + "\n").encode())
    con = connect(tmp_path / "warehouse.duckdb")
    try:
        result = land_new_files(con, raw, now=NOW)
        assert sorted(f.source_file for f in result.landed) == ["caf\\xe9-\\xff.jsonl", "good.jsonl"]
        rows = con.execute(
            "select source_file, event_id, landing_problem from raw.usage_lines order by source_file"
        ).fetchall()
        assert rows == [("caf\\xe9-\\xff.jsonl", None, "invalid_file_name"), ("good.jsonl", "e1", None)]
        # lines read = landed + blank + quarantined, file by file
        assert [(f.lines_read, f.lines_landed, f.lines_blank, f.lines_quarantined) for f in result.landed] == [
            (1, 0, 0, 1), (1, 1, 0, 0)]
        # landed once: the next run skips it under the same escaped name
        again = land_new_files(con, raw)
        assert again.landed == () and sorted(again.skipped) == ["caf\\xe9-\\xff.jsonl", "good.jsonl"]
    finally:
        con.close()

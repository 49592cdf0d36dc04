"""Files that change after they were landed: a file that grows lands its new lines; a file whose landed part
changed is refused loudly (named by landing, a quarantined row, a failing check), never silently ignored."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime

import dagster as dg

from metering_dagster.warehouse import connect
from tests.pipeline import conftest as pipeline
from tests.pipeline.conftest import Warehouse, event

dbt, warehouse = pipeline.dbt, pipeline.warehouse  # the pipeline tests' fixtures

EARLY = datetime(2026, 11, 2, tzinfo=UTC)
LATER = datetime(2026, 11, 3, tzinfo=UTC)

CONTRACT = """
environment: test
currency: usd
grace_period: 1h
meters:
  - {key: calls, action: call, aggregation: count, price: {model: per_unit, unit_amount_decimal: "1"}}
customers:
  - {id: c1, billing_anchor: "2026-10-01T00:00:00Z"}
"""


def call(event_id: str) -> str:
    return json.dumps(event("e" + event_id, "2026-10-05T00:00:00Z", "c1", "call"))


def accounted(warehouse: Warehouse) -> list[tuple]:
    """Per file: lines read, blank lines, rows landed (lines read must be rows + blank)."""
    return warehouse.query(
        """select f.source_file, f.line_count, f.lines_blank, count(u.line_number)
           from raw.landed_files f left join raw.usage_lines u using (source_file) group by all order by 1"""
    )


def test_a_grown_file_lands_only_its_new_lines_with_their_line_numbers(warehouse):
    warehouse.raw_dir.mkdir(parents=True)
    path = warehouse.raw_dir / "calls.jsonl"
    path.write_text(call("1") + "\n" + call("2") + "\n")
    assert [f.lines_landed for f in warehouse.land(EARLY).landed] == [2]

    with path.open("a") as f:
        f.write("\n" + call("3") + "\n")
    second = warehouse.land(LATER)
    assert second.changed == ()
    [appended] = second.landed
    assert (appended.source_file, appended.lines_read, appended.lines_landed, appended.lines_blank) == (
        "calls.jsonl",
        2,
        1,
        1,
    )
    assert warehouse.query(
        "select landing_run_id, line_number, event_id from raw.usage_lines order by line_number"
    ) == [(1, 1, "e1"), (1, 2, "e2"), (2, 4, "e3")]
    assert accounted(warehouse) == [("calls.jsonl", 4, 1, 3)]

    # nothing new: nothing landed again
    third = warehouse.land(LATER)
    assert third.landed == () and third.skipped == ("calls.jsonl",)


def test_a_grown_gzip_file_lands_its_new_member(warehouse):
    warehouse.raw_dir.mkdir(parents=True)
    path = warehouse.raw_dir / "calls.jsonl.gz"
    path.write_bytes(gzip.compress((call("1") + "\n").encode(), mtime=0))
    warehouse.land(EARLY)
    with path.open("ab") as f:  # gzip members concatenate: `cat a.gz b.gz` is a valid gzip file
        f.write(gzip.compress((call("2") + "\n" + call("3") + "\n").encode(), mtime=0))
    second = warehouse.land(LATER)
    assert [(f.lines_read, f.lines_landed) for f in second.landed] == [(2, 2)] and second.changed == ()
    assert warehouse.query("select line_number, event_id from raw.usage_lines order by 1") == [
        (1, "e1"),
        (2, "e2"),
        (3, "e3"),
    ]


def test_a_file_whose_landed_part_changed_is_refused_named_and_quarantined(warehouse, dbt):
    warehouse.write_contract(CONTRACT)
    warehouse.raw_dir.mkdir(parents=True)
    path = warehouse.raw_dir / "calls.jsonl"
    path.write_text(call("1") + "\n" + call("2") + "\n")
    warehouse.land(EARLY)
    path.write_text(call("1") + "\n" + call("9") + "\n" + call("3") + "\n")  # line 2 rewritten, a line added

    second = warehouse.land(LATER)
    assert [c.source_file for c in second.changed] == ["calls.jsonl"] and second.landed == ()
    dbt.run(warehouse.state_dir, "build", "--exclude", "tag:reconciliation")
    quarantined = warehouse.query("select source_file, line_number, reason, raw_line from marts.rpt_quarantined_events")
    assert [q[:3] for q in quarantined] == [("calls.jsonl", 3, "file_changed_after_landing")]
    assert "changed after landing" in quarantined[0][3] and "new file name" in quarantined[0][3]
    assert warehouse.query("select count(*) from raw.usage_lines where event_id in ('e9', 'e3')") == [(0,)]
    assert accounted(warehouse) == [("calls.jsonl", 3, 0, 3)]  # the refusal row counts as one line read

    # still changed on the next run: refused again, but quarantined once
    assert [c.source_file for c in warehouse.land(LATER).changed] == ["calls.jsonl"]
    assert warehouse.query(
        "select count(*) from raw.usage_lines where landing_problem = 'file_changed_after_landing'"
    ) == [(1,)]


def test_the_landing_check_fails_and_names_a_changed_file(metering_env, dbt_manifest):
    from metering_dagster.defs.landing.assets import landed_usage_lines
    from metering_dagster.defs.resources import MeteringResource

    path = metering_env["raw"] / "calls.jsonl"
    path.write_text(call("1") + "\n")
    resources = {"metering": MeteringResource()}
    first = dg.materialize([landed_usage_lines], resources=resources)
    assert all(c.passed for c in first.get_asset_check_evaluations())

    path.write_text(call("2") + "\n")
    second = dg.materialize([landed_usage_lines], resources=resources)
    [check] = second.get_asset_check_evaluations()
    assert check.check_name == "no_file_changed_after_landing" and not check.passed
    assert "calls.jsonl" in check.description
    metadata = second.get_asset_materialization_events()[0].step_materialization_data.materialization.metadata
    assert metadata["files_changed_refused"].value == 1 and metadata["refused_files"].value == "calls.jsonl"
    with connect(metering_env["state"] / "warehouse.duckdb", read_only=True) as con:
        assert con.execute("select landing_problem from raw.usage_lines where line_number = 2").fetchall() == [
            ("file_changed_after_landing",)
        ]

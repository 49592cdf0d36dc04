"""The analysts' copy: complete after every publish, appending only new landing runs of event tables."""

from __future__ import annotations

import duckdb

from metering_dagster.serving.publish import publish_marts


def _published(path) -> dict[str, list]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {
            "events": con.execute("select event_id, landing_run_id from marts.fct_events order by 1").fetchall(),
            "totals": con.execute("select * from marts.fct_totals order by 1").fetchall(),
        }
    finally:
        con.close()


def test_publish_appends_new_runs_and_copies_whole_when_history_changed(tmp_path):
    warehouse, target = tmp_path / "warehouse.duckdb", tmp_path / "analytics.duckdb"
    con = duckdb.connect(str(warehouse))
    con.execute("create schema marts")
    con.execute("create table marts.fct_events as select 'e' || i as event_id, 1 as landing_run_id from range(3) t(i)")
    con.execute("create table marts.fct_totals as select 'c1' as customer_id, 3 as n")
    publish_marts(con, target, generation="g1")
    assert len(_published(target)["events"]) == 3

    con.execute("insert into marts.fct_events values ('e9', 2)")
    con.execute("update marts.fct_totals set n = 4")
    publish_marts(con, target, generation="g1")
    got = _published(target)
    assert got["events"] == [("e0", 1), ("e1", 1), ("e2", 1), ("e9", 2)] and got["totals"] == [("c1", 4)]

    con.execute("delete from marts.fct_events where event_id = 'e1'")  # history rebuilt: a full copy
    con.execute("create table marts.rpt_new as select 1 as x")
    publish_marts(con, target, generation="g1")
    assert _published(target)["events"] == [("e0", 1), ("e2", 1), ("e9", 2)]
    con.execute("drop table marts.rpt_new")
    assert "rpt_new" not in publish_marts(con, target, generation="g1")
    check = duckdb.connect(str(target), read_only=True)
    assert (
        check.execute("select count(*) from information_schema.tables where table_name = 'rpt_new'").fetchone()[0] == 0
    )
    check.close()
    con.close()


def test_a_rebuild_that_changes_rows_in_place_is_copied_whole(tmp_path):
    warehouse, target = tmp_path / "warehouse.duckdb", tmp_path / "analytics.duckdb"
    con = duckdb.connect(str(warehouse))
    con.execute("create schema marts")
    con.execute("create table marts.fct_events as select 'e' || i as event_id, 1 as landing_run_id from range(3) t(i)")
    con.execute("create table marts.fct_totals as select 'c1' as customer_id, 3 as n")
    publish_marts(con, target, generation="contract-1")
    # a contract change rebuilt every model: same row count, other rows (an anchor moved, an id renamed)
    con.execute("update marts.fct_events set event_id = event_id || '-rebuilt'")
    publish_marts(con, target, generation="contract-2")
    assert _published(target)["events"] == [("e0-rebuilt", 1), ("e1-rebuilt", 1), ("e2-rebuilt", 1)]
    con.close()

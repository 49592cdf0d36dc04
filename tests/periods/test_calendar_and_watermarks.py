"""Fast tests: which periods the schedules act on, and how source watermarks decide a hold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg

from metering_dagster.periods.calendar import periods_finalized_within, periods_in_grace
from metering_dagster.periods.watermarks import incomplete_sources, read_watermarks, source_of


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


class _Customer:
    def __init__(self, cid, anchor):
        self.id, self.billing_anchor = cid, anchor


class _Contract:
    grace_period_seconds = 3600
    customers = [_Customer("cus_a", utc(2026, 10, 1)), _Customer("cus_31", utc(2026, 1, 31))]


def test_periods_in_grace_and_just_finalized():
    c = _Contract()
    assert periods_in_grace(c, utc(2026, 11, 1, 0, 20)) == [("cus_a", utc(2026, 11, 1))]
    assert periods_in_grace(c, utc(2026, 11, 1, 1, 0)) == []  # the grace period is over
    assert periods_in_grace(c, utc(2026, 10, 1, 0, 10)) == []  # the first period has only started
    assert periods_in_grace(c, utc(2026, 2, 28, 0, 30)) == [("cus_31", utc(2026, 2, 28))]  # clamped to Feb 28
    window = timedelta(minutes=15)
    assert periods_finalized_within(c, utc(2026, 11, 1, 1, 10), window) == [("cus_a", utc(2026, 11, 1))]
    assert periods_finalized_within(c, utc(2026, 11, 1, 1, 20), window) == []
    assert periods_finalized_within(c, utc(2026, 11, 1, 0, 59), window) == []


def test_watermarks_hold_only_customers_fed_by_an_incomplete_source(tmp_path):
    (tmp_path / "eu").mkdir()
    (tmp_path / "us").mkdir()
    (tmp_path / "eu" / "WATERMARK").write_text("2026-10-31T23:00:00Z\n")
    (tmp_path / "us" / "WATERMARK").write_text("yesterday")
    marks = read_watermarks(tmp_path)
    assert marks["eu"].complete_until == utc(2026, 10, 31, 23)
    assert marks["us"].complete_until is None and "RFC 3339" in marks["us"].problem
    assert source_of("eu/2026/x.jsonl") == "eu" and source_of("x.jsonl") == "."
    feeds = {"cus_a": {"eu", "."}, "cus_b": {"."}, "cus_c": {"us"}}
    end = utc(2026, 11, 1)
    assert incomplete_sources("cus_a", end, marks, feeds) == [
        "source eu complete only until 2026-10-31T23:00:00+00:00, before the period end 2026-11-01T00:00:00+00:00"
    ]
    assert incomplete_sources("cus_b", end, marks, feeds) == []  # the root carries no watermark: not tracked
    assert incomplete_sources("cus_c", end, marks, feeds)  # unreadable: held (fail closed)
    (tmp_path / "eu" / "WATERMARK").write_text("2026-11-01T00:00:00Z")
    assert incomplete_sources("cus_a", end, read_watermarks(tmp_path), feeds) == []  # exactly at the end: complete


def test_period_schedules_and_reconciliation_job_are_defined(metering_env):
    from metering_dagster.definitions import defs
    from metering_dagster.defs.orchestration.schedules import period_close_schedule

    assert {s.name for s in defs.schedules} >= {"hourly_metering", "period_close", "post_finalization_reconciliation"}
    job = defs.resolve_job_def("closed_period_reconciliation_job")
    assert {"period_close", "closed_period_reconciliation", "stripe_snapshot"} <= {n.name for n in job.nodes}
    metering_env["contract"].write_text(metering_env["contract"].read_text())  # the demo contract, anchors Oct 1
    in_grace = period_close_schedule(dg.build_schedule_context(scheduled_execution_time=utc(2026, 11, 1, 0, 5)))
    assert isinstance(in_grace, dg.RunRequest) and in_grace.tags["metering/trigger"] == "period_close"
    idle = period_close_schedule(dg.build_schedule_context(scheduled_execution_time=utc(2026, 11, 5, 12, 5)))
    assert isinstance(idle, dg.SkipReason)

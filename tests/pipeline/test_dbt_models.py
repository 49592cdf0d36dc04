"""The dbt models, run through the real dbt on a temporary DuckDB: quarantine, dedupe, periods,
aggregations, prices, reconciliation, and an incremental re-run equal to a full rebuild."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from .conftest import DBT_PROJECT, Warehouse, event

CONTRACT = """
environment: test
currency: usd
grace_period: 1h
meters:
  - {key: usage_sum, action: use, value: value, aggregation: sum, price: {model: per_unit, unit_amount_decimal: "1"}}
  - key: calls_volume
    action: call
    aggregation: count
    price:
      model: volume
      tiers:
        - {up_to: 5, unit_amount_decimal: "700"}
        - {up_to: 10, unit_amount_decimal: "650"}
        - {up_to: inf, unit_amount_decimal: "600"}
  - key: calls_graduated
    action: call
    aggregation: count
    price:
      model: graduated
      tiers:
        - {up_to: 5, unit_amount_decimal: "700"}
        - {up_to: 10, unit_amount_decimal: "650"}
        - {up_to: inf, unit_amount_decimal: "600"}
  - key: peak_up
    action: gauge
    value: metadata.level
    aggregation: max
    price: {model: package, package: {size: 10, unit_amount_decimal: "100", round: up}}
  - key: peak_down
    action: gauge
    value: metadata.level
    aggregation: max
    price: {model: package, package: {size: 10, unit_amount_decimal: "100", round: down}}
  - {key: seats, action: seat, value: metadata.seats, aggregation: last_during_period, price: {model: per_unit, unit_amount_decimal: "1"}}
  - {key: storage, action: store, value: metadata.gb, aggregation: last_ever, price: {model: per_unit, unit_amount_decimal: "1"}}
  - {key: users, action: visit, value: metadata.user, aggregation: unique_count, price: {model: per_unit, unit_amount_decimal: "1"}}
  - key: tokens
    action: infer
    value: metadata.tokens
    aggregation: sum
    filter: {metadata.model: [a, b]}
    price:
      model: graduated
      tiers:
        - {up_to: 100, unit_amount_decimal: "0", flat_amount_decimal: "500"}
        - {up_to: inf, unit_amount_decimal: "1"}
customers:
  - {id: c_main, billing_anchor: "2026-10-01T00:00:00Z"}
  - {id: c_31, billing_anchor: "2026-01-31T00:00:00Z"}
  - {id: c_29, billing_anchor: "2026-01-29T12:00:00Z"}
  - {id: p1, billing_anchor: "2026-10-01T00:00:00Z"}
  - {id: p5, billing_anchor: "2026-10-01T00:00:00Z"}
  - {id: p6, billing_anchor: "2026-10-01T00:00:00Z"}
  - {id: p20, billing_anchor: "2026-10-01T00:00:00Z"}
  - {id: p25, billing_anchor: "2026-10-01T00:00:00Z"}
"""
OCT = "2026-10-01T00:00:00+00:00"
NOV = "2026-11-01T00:00:00+00:00"
T = "2026-10-10T10:00:00Z"


def ok(event_id, action="use", customer="c_main", ts=T, **extra):
    return event(event_id, ts, customer, action, **extra)


QUARANTINED = [
    ('{"event_id": "q_json", ', "invalid_json"),
    (ok("q_missing", action=None), "missing_field"),
    ({**ok("q_field"), "customer_id": 42}, "invalid_field"),
    (ok("q_ts_offset", ts="2026-10-10T10:00:00"), "invalid_timestamp"),
    (ok("q_ts_float", ts=1790000000.5), "invalid_timestamp"),
    (ok("q_future", ts="2026-11-02T00:05:01Z"), "timestamp_in_future"),
    (ok("q_env", environment="live", value=1), "wrong_environment"),
    (ok("q_customer", customer="nobody", value=1), "unknown_customer"),
    (ok("q_action", action="train"), "unmetered_action"),
    (ok("q_value_missing"), "invalid_value"),
    (ok("q_value_text", value="abc"), "invalid_value"),
    (
        '{"event_id":"q_digits","timestamp":"2026-10-10T10:00:00Z","customer_id":"c_main","action":"use",'
        '"value":0.30000000000000004444}',
        "invalid_value",
    ),
    (ok("q_negative_max", action="gauge", metadata={"level": -1}), "invalid_value"),
    (ok("quarantined_then_valid", value=1000, customer="nobody"), "unknown_customer"),
]

FIRST_RUN = {
    "a/first.jsonl": [
        # period boundaries and offsets (c_main, anchor Oct 1)
        ok("b_oct_start", ts=OCT, value=1),
        ok("b_nov_start", ts=NOV, value=10),
        ok("b_offset_nov", ts="2026-10-31T23:30:00-01:00", value=100),  # = Nov 1 00:30Z
        ok("b_offset_oct", ts="2026-11-01T00:30:00+01:00", value=1000),  # = Oct 31 23:30Z
        # decimals whose float sum rounds the other way: 1.005 + 4.35 + 0.145 = 5.5 exactly
        ok("d1", customer="p1", value=1.005, ts=1791000000),
        ok("d2", customer="p1", value="4.35", ts=1791000001),
        ok("d3", customer="p1", value=0.145, ts=1791000002),
        ok("neg", customer="p5", value=-3),  # sum takes negatives; max(q, 0) is billed
        # dedupe: the first copy in receipt order wins
        ok("dup", value=5, ts="2026-10-05T00:00:00Z"),
        # aggregations
        ok("g1", "gauge", metadata={"level": 3}),
        ok("g2", "gauge", metadata={"level": "17"}),
        ok("g3", "gauge", metadata={"level": 12.0}),
        ok("s1", "seat", ts="2026-10-10T10:00:00Z", metadata={"seats": 5}),
        ok("s2", "seat", ts="2026-10-10T12:00:00Z", metadata={"seats": 7}),
        ok("s3", "seat", ts="2026-10-10T12:00:00Z", metadata={"seats": 9}),  # tie: later receipt wins
        ok("s4", "seat", ts="2026-10-10T11:00:00Z", metadata={"seats": 100}),
        ok("st1", "store", ts="2026-10-02T00:00:00Z", metadata={"gb": "12.5"}),
        ok("st2", "store", ts="2026-10-01T00:00:00Z", metadata={"gb": "99"}),
        ok("u1", "visit", metadata={"user": "u1"}),
        ok("u2", "visit", metadata={"user": "u2"}),
        ok("u3", "visit", metadata={"user": "u1"}),
        ok("u4", "visit", metadata={"user": 3}),
        ok("u5", "visit", metadata={"user": "3"}),
        ok("t1", "infer", metadata={"model": "a", "tokens": 60}),
        ok("t2", "infer", metadata={"model": "c", "tokens": 1000}),  # filtered out, still valid
        ok("t3", "infer", metadata={"model": "b", "tokens": 50}),
        ok("t4", "infer", metadata={"tokens": 7}),  # no model: filtered out
        # anchors on the 29th-31st
        ok("a31_p0_end", customer="c_31", ts="2026-02-27T23:59:59Z", value=1),
        ok("a31_p1_start", customer="c_31", ts="2026-02-28T00:00:00Z", value=2),
        ok("a31_p1_end", customer="c_31", ts="2026-03-30T23:59:59Z", value=4),
        ok("a31_p2_start", customer="c_31", ts="2026-03-31T00:00:00Z", value=8),
        ok("a29_p1", customer="c_29", ts="2026-02-28T12:00:00Z", value=1),
        ok("a29_p0", customer="c_29", ts="2026-02-28T11:59:59Z", value=2),
    ],
    "b.jsonl": [q for q, _ in QUARANTINED]
    + [ok("dup", value=5, ts="2026-10-05T00:00:00Z"), ok("dup", value=6, ts="2026-10-05T00:00:00Z")],
}
for name, n in [("p1", 1), ("p5", 5), ("p6", 6), ("p20", 20), ("p25", 25)]:
    FIRST_RUN["a/first.jsonl"] += [ok(f"call_{name}_{i}", "call", customer=name) for i in range(n)]

SECOND_RUN = {
    "c.jsonl.gz": [
        ok("quarantined_then_valid", value=1000),  # a valid later copy of a quarantined event counts
        ok("dup", value=7, ts="2026-10-05T00:00:00Z"),  # a later run never wins
        ok("late", value=20000, ts="2026-10-20T00:00:00Z"),  # late usage for October
        ok("st3", "store", ts="2026-11-03T00:00:00Z", metadata={"gb": "40"}),
    ]
}


@pytest.fixture(scope="module")
def built(dbt, tmp_path_factory):
    """One warehouse for the module: two landing runs, each followed by an incremental dbt build."""
    from .conftest import Warehouse

    root = tmp_path_factory.mktemp("scenario")
    (root / "state").mkdir()
    wh = Warehouse(state_dir=root / "state", raw_dir=root / "raw")
    wh.write_contract(CONTRACT)
    for name, lines in FIRST_RUN.items():
        wh.add_file(name, lines)
    wh.land(datetime(2026, 11, 2, tzinfo=UTC))
    dbt.run(wh.state_dir, "build", "--exclude", "tag:reconciliation")
    wh.first_build = {t: wh.snapshot(t) for t in MARTS}
    for name, lines in SECOND_RUN.items():
        wh.add_file(name, lines)
    wh.land(datetime(2026, 11, 4, tzinfo=UTC))
    dbt.run(wh.state_dir, "build")
    return wh


MARTS = [
    "marts.fct_usage_daily",
    "marts.fct_usage_by_period",
    "marts.fct_invoice_lines_expected",
    "marts.fct_metered_events",
    "marts.rpt_quarantined_events",
    "marts.rpt_duplicate_events",
]


def line(wh, customer, meter, period_start=OCT):
    rows = wh.query(
        "select quantity, amount_cents from marts.fct_invoice_lines_expected "
        "where customer_id = ? and meter = ? and period_start = ?::timestamptz",
        [customer, meter, period_start],
    )
    assert len(rows) == 1, (customer, meter, period_start, rows)
    return rows[0]


def test_each_quarantine_reason(built):
    rows = dict(
        built.query("select line_number, reason from marts.rpt_quarantined_events where source_file = 'b.jsonl'")
    )
    assert [rows.get(i + 1) for i in range(len(QUARANTINED))] == [reason for _, reason in QUARANTINED]
    raw = built.query(
        "select raw_line from marts.rpt_quarantined_events where line_number = 1 and source_file = 'b.jsonl'"
    )
    assert raw == [('{"event_id": "q_json", ',)]


def test_dedupe_first_in_receipt_order_with_conflicts(built):
    rows = built.query(
        "select kept_source, duplicate_source, is_conflict from marts.rpt_duplicate_events "
        "where event_id = 'dup' order by duplicate_source"
    )
    assert rows == [
        ("a/first.jsonl:9", f"b.jsonl:{len(QUARANTINED) + 1}", False),
        ("a/first.jsonl:9", f"b.jsonl:{len(QUARANTINED) + 2}", True),
        ("a/first.jsonl:9", "c.jsonl.gz:2", True),
    ]
    values = built.query("select value from marts.fct_metered_events where event_id = 'dup'")
    assert values == [(Decimal(5),)]


def test_valid_later_copy_of_quarantined_event_counts(built):
    assert built.query(
        "select source_file from marts.fct_metered_events where event_id = 'quarantined_then_valid'"
    ) == [("c.jsonl.gz",)]


def test_period_boundaries_and_offsets(built):
    periods = dict(
        built.query(
            "select event_id, period_start::varchar from marts.fct_metered_events where event_id like 'b_%' "
            "or event_id like 'a3%' or event_id like 'a29%'"
        )
    )
    assert periods == {
        "b_oct_start": "2026-10-01 00:00:00+00",
        "b_nov_start": "2026-11-01 00:00:00+00",
        "b_offset_nov": "2026-11-01 00:00:00+00",
        "b_offset_oct": "2026-10-01 00:00:00+00",
        "a31_p0_end": "2026-01-31 00:00:00+00",
        "a31_p1_start": "2026-02-28 00:00:00+00",
        "a31_p1_end": "2026-02-28 00:00:00+00",
        "a31_p2_start": "2026-03-31 00:00:00+00",
        "a29_p1": "2026-02-28 12:00:00+00",
        "a29_p0": "2026-01-29 12:00:00+00",
    }
    ends = built.query(
        "select period_start::varchar, period_end::varchar from marts.fct_invoice_lines_expected "
        "where customer_id = 'c_31' and meter = 'usage_sum' order by period_start limit 4"
    )
    assert ends == [
        ("2026-01-31 00:00:00+00", "2026-02-28 00:00:00+00"),
        ("2026-02-28 00:00:00+00", "2026-03-31 00:00:00+00"),
        ("2026-03-31 00:00:00+00", "2026-04-30 00:00:00+00"),
        ("2026-04-30 00:00:00+00", "2026-05-31 00:00:00+00"),
    ]


def test_aggregations(built):
    # 1 + 1000 (offsets) + 5 (dup, first copy) + 20000 (late) + 1000 (valid copy of a quarantined event)
    assert line(built, "c_main", "usage_sum") == (Decimal(22006), 22006)
    assert line(built, "c_main", "usage_sum", NOV) == (Decimal(110), 110)
    assert line(built, "c_main", "peak_up") == (Decimal(17), 200)
    assert line(built, "c_main", "peak_down") == (Decimal(17), 100)
    assert line(built, "c_main", "seats") == (Decimal(9), 9)
    assert line(built, "c_main", "storage") == (Decimal("12.5"), 13)  # 12.5 cents rounds half up
    assert line(built, "c_main", "users") == (Decimal(4), 4)  # u1, u2, 3 (number), "3" (string)
    assert line(built, "c_main", "tokens") == (Decimal(110), 510)  # flat 500 + 10 units over 100
    assert line(built, "p5", "calls_volume")[0] == Decimal(5)


def test_last_ever_is_carried_into_periods_without_events(built):
    rows = built.query(
        "select period_start::varchar, quantity, event_count, last_event_at::varchar, is_carried "
        "from marts.fct_usage_by_period where customer_id = 'c_main' and meter = 'storage' order by 1"
    )
    assert rows == [
        ("2026-10-01 00:00:00+00", Decimal("12.5"), 2, "2026-10-02 00:00:00+00", False),
        ("2026-11-01 00:00:00+00", Decimal("40"), 1, "2026-11-03 00:00:00+00", False),
    ]
    carried = built.query(
        "select quantity, event_count, is_carried from marts.fct_usage_by_period "
        "where customer_id = 'c_main' and meter = 'storage' and period_start = ?::timestamptz",
        [NOV],
    )
    assert carried == [(Decimal("40"), 1, False)]


def test_last_ever_carry_in_first_build(built):
    rows = [r for r in built.first_build["marts.fct_usage_by_period"] if r[0] == "c_main" and r[1] == "storage"]
    assert [(r[2].isoformat()[:10], r[4], r[5], r[7]) for r in sorted(rows, key=lambda r: r[2])] == [
        ("2026-10-01", Decimal("12.5"), 2, False),
        ("2026-11-01", Decimal("12.5"), 0, True),
    ]


def test_exact_decimals_round_half_up_where_floats_would_not(built):
    assert line(built, "p1", "usage_sum") == (Decimal("5.5"), 6)
    assert 1.005 + 4.35 + 0.145 < 5.5  # the float sum would have rounded down


def test_negative_sum_is_billed_as_zero(built):
    assert line(built, "p5", "usage_sum") == (Decimal(-3), 0)


@pytest.mark.parametrize(
    "customer,volume,graduated",
    [("p1", 700, 700), ("p5", 3500, 3500), ("p6", 3900, 4150), ("p20", 12000, 12750), ("p25", 15000, 15750)],
)
def test_stripe_tier_examples(built, customer, volume, graduated):
    assert line(built, customer, "calls_volume")[1] == volume
    assert line(built, customer, "calls_graduated")[1] == graduated


def test_quantity_zero_lines_are_listed(built):
    # a customer without any event still gets every meter for every listed period;
    # graduated with a flat first tier charges it at quantity 0
    assert line(built, "p1", "tokens") == (Decimal(0), 500)
    assert line(built, "p1", "seats") == (Decimal(0), 0)
    n = built.query("select count(*) from marts.fct_invoice_lines_expected where customer_id = 'p1'")[0][0]
    assert n == 9 * 2  # 9 meters x (Oct, Nov)


def test_every_invoice_line_traces_to_its_events(built):
    mismatches = built.query(
        """
        select l.customer_id, l.meter, l.period_start
        from marts.fct_invoice_lines_expected l
        join main.stg_contract__meters m using (meter)
        left join marts.fct_usage_by_period u using (customer_id, meter, period_start)
        left join (
            select customer_id, meter, period_start, count(*) as n
            from marts.fct_metered_events group by all
        ) e using (customer_id, meter, period_start)
        where coalesce(e.n, 0) <> coalesce(u.event_count, 0)
        """.replace("main.stg_contract__meters", "staging.stg_contract__meters")
    )
    assert mismatches == []


def test_incremental_run_equals_full_rebuild(built, dbt):
    incremental = {t: built.snapshot(t) for t in MARTS}
    dbt.run(built.state_dir, "build", "--full-refresh", "--exclude", "tag:reconciliation")
    assert {t: built.snapshot(t) for t in MARTS} == incremental


def test_reconciliation_statuses(built, dbt):
    with_stripe = """
    insert into stripe_view.usage_summaries values
      ('p5', 'calls_volume', '2026-10-01', '2026-11-01', 5, '2026-11-02'),
      ('p6', 'calls_volume', '2026-10-01', '2026-11-01', 7, '2026-11-02'),
      ('p20', 'calls_volume', '2026-10-01', '2026-11-01', 20, '2026-11-02'),
      ('p25', 'calls_volume', '2026-10-01', '2026-11-01', 25, '2026-11-02'),
      ('ghost', 'calls_volume', '2026-10-01', '2026-11-01', 1, '2026-11-02');
    insert into stripe_view.invoice_lines values
      ('p5', 'calls_volume', '2026-10-01', '2026-11-01', 'in_1', 'paid', 5, 3500, 'usd', '2026-11-02'),
      ('p20', 'calls_volume', '2026-10-01', '2026-11-01', 'in_2', 'open', 20, 11999, 'usd', '2026-11-02');
    """
    from metering_dagster.warehouse import connect

    with connect(built.path) as con:
        con.execute(with_stripe)
    dbt.run(built.state_dir, "build", "--select", "tag:reconciliation")
    status = dict(
        ((c, p), s)
        for c, p, s in built.query(
            "select customer_id, period_start::varchar, status from marts.rpt_reconciliation "
            "where meter = 'calls_volume'"
        )
    )
    oct_ = "2026-10-01 00:00:00+00"
    assert status[("p5", oct_)] == "match"
    assert status[("p6", oct_)] == "quantity_mismatch"
    assert status[("p20", oct_)] == "amount_mismatch"
    assert status[("p25", oct_)] == "not_yet_invoiced"
    assert status[("ghost", oct_)] == "missing_locally"
    assert status[("p1", oct_)] == "missing_in_stripe"


def test_dbt_unit_tests_pass(built, dbt):
    dbt.run(built.state_dir, "test", "--select", "test_type:unit")


@pytest.mark.slow  # several dbt builds or a subprocess run: out of make test-fast
def test_periods_and_days_do_not_depend_on_the_machines_time_zone(built, dbt, tmp_path):
    """dbt-duckdb's session takes the machine's time zone; periods and usage days are UTC all the same.
    (A cast between timestamptz and timestamp goes through the session zone: in New York, an event at
    2026-11-01 02:00 UTC fell in a period starting 2026-10-31 00:00 UTC.)"""
    shutil.copytree(built.state_dir, tmp_path / "state")
    elsewhere = Warehouse(state_dir=tmp_path / "state", raw_dir=built.raw_dir)
    dbt_cli = Path(sys.executable).parent / "dbt"
    subprocess.run(
        [
            str(dbt_cli),
            "build",
            "--full-refresh",
            "--exclude",
            "tag:reconciliation",
            "--quiet",
            "--project-dir",
            str(DBT_PROJECT),
            "--profiles-dir",
            str(DBT_PROJECT),
            "--target-path",
            str(tmp_path / "target"),
            "--log-path",
            str(tmp_path / "logs"),
        ],
        check=True,
        env={**os.environ, "TZ": "America/New_York", "METERING_STATE_DIR": str(elsewhere.state_dir)},
    )
    assert {t: elsewhere.snapshot(t) for t in MARTS} == {t: built.snapshot(t) for t in MARTS}

"""Reading Stripe back, through `metering run` only: invoices and previews of more than one page of lines,
and one customer whose reads fail while the others are billed, closed and reconciled.

The story is set in October and November 2025 (events dated after the wall clock would be quarantined).
"""

from __future__ import annotations

import json
import os
import subprocess
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest

from tests.faults.chaos import ChaosProxy
from tests.periods.test_period_close import METERING, REPO_ROOT, metering, query, write

pytestmark = pytest.mark.slow

METERS = [f"m{n:02d}" for n in range(1, 13)]
WIDE_CONTRACT = (
    """\
environment: test
currency: usd
grace_period: 1h
test_clock_start: "2025-10-01T00:00:00Z"
meters:
"""
    + "".join(
        f"""  - key: {m}
    action: inference
    value: metadata.{m}
    aggregation: sum
    price: {{model: per_unit, unit_amount_decimal: "0.{n}"}}
"""
        for n, m in enumerate(METERS, start=1)
    )
    + """customers:
  - {id: cus_wide, billing_anchor: "2025-10-01T00:00:00Z"}
"""
)


def price(meter: str) -> Decimal:
    return Decimal(f"0.{METERS.index(meter) + 1}")


def cents(q: Decimal, meter: str) -> int:
    return int((max(q, Decimal(0)) * price(meter)).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def line(event_id: str, customer: str, ts: str, values: dict[str, int]) -> str:
    return json.dumps(
        {"event_id": event_id, "timestamp": ts, "customer_id": customer, "action": "inference", "metadata": values}
    )


def environment(tmp_path: Path, contract: str) -> tuple[dict[str, str], Path, Path]:
    state, raw = tmp_path / "state", tmp_path / "raw"
    raw.mkdir()
    (tmp_path / "metering.yml").write_text(contract)
    (state / "dagster_home").mkdir(parents=True)
    env = dict(
        os.environ,
        METERING_STATE_DIR=str(state),
        METERING_RAW_DIR=str(raw),
        METERING_CONTRACT=str(tmp_path / "metering.yml"),
        DAGSTER_HOME=str(state / "dagster_home"),
    )
    return env, state, raw


def reconciliation(state: Path, period_start: str) -> list[tuple]:
    return query(
        state / "analytics.duckdb",
        """select customer_id, meter, status, invoice_status, local_amount_cents, stripe_amount_cents
                    from marts.rpt_reconciliation where period_start = ?::timestamptz order by 1, 2""",
        [period_start],
    )


def test_twelve_meters_and_pending_adjustments_reconcile_line_by_line(tmp_path, dbt_manifest):
    env, state, raw = environment(tmp_path, WIDE_CONTRACT)
    october = {m: 100 * (n + 1) + 7 for n, m in enumerate(METERS)}
    write(raw / "october.jsonl", line("oct-1", "cus_wide", "2025-10-10T10:00:00Z", october))
    metering("clock", "advance", "--to", "2025-11-01T00:30:00Z", env=env)
    metering("run", env=env)
    metering("clock", "advance", "--to", "2025-11-01T02:00:00Z", env=env)  # October's invoice is final

    # Late October usage on three meters (three adjustments, pending invoice items) and November's usage.
    late = {m: {"m01": 50, "m05": 25, "m12": 9}.get(m, 0) for m in METERS}  # an event carries every meter's value
    november = {m: 10 * (n + 1) + 3 for n, m in enumerate(METERS)}
    write(
        raw / "late.jsonl",
        line("oct-late", "cus_wide", "2025-10-20T10:00:00Z", late),
        line("nov-1", "cus_wide", "2025-11-05T10:00:00Z", november),
    )
    metering("clock", "advance", "--to", "2025-11-10T00:00:00Z", env=env)
    out = metering("run", env=env).stdout
    assert "late-usage adjustments: 3 new" in out, out
    # The preview holds 12 metered lines and 3 adjustments: more than one page, every line compared.
    preview = reconciliation(state, "2025-11-01")
    assert preview == [
        ("cus_wide", m, "match", "preview", cents(Decimal(november[m]), m), cents(Decimal(november[m]), m))
        for m in METERS
    ], preview
    lines = query(
        state / "warehouse.duckdb", "select count(*) from stripe_view.invoice_lines where invoice_status = 'preview'"
    )
    assert lines == [(12,)]

    metering("clock", "advance", "--to", "2025-12-01T02:00:00Z", env=env)
    metering("run", env=env)
    final = reconciliation(state, "2025-11-01")
    assert final == [
        ("cus_wide", m, "match", "open", cents(Decimal(november[m]), m), cents(Decimal(november[m]), m)) for m in METERS
    ], final
    adjustments = query(
        state / "warehouse.duckdb",
        "select meter, amount_cents, stripe_invoice_id is not null from stripe_view.invoice_adjustments order by 1",
    )
    assert adjustments == [
        (m, cents(Decimal(october[m] + late[m]), m) - cents(Decimal(october[m]), m), True)
        for m in ("m01", "m05", "m12")
    ], adjustments
    results = query(
        state / "warehouse.duckdb",
        "select period_start::date::varchar, result from ops.period_reconciliation order by 1",
    )
    assert results == [("2025-10-01", "match"), ("2025-11-01", "match")], results


ISOLATION_CONTRACT = """\
environment: test
currency: usd
grace_period: 1h
test_clock_start: "2025-10-01T00:00:00Z"
meters:
  - key: tokens
    action: inference
    value: metadata.tokens
    aggregation: sum
    price: {model: per_unit, unit_amount_decimal: "0.5"}
customers:
  - {id: cus_a, billing_anchor: "2025-10-01T00:00:00Z"}
  - {id: cus_b, billing_anchor: "2025-10-01T00:00:00Z"}
  - {id: cus_c, billing_anchor: "2025-10-01T00:00:00Z"}
"""


def test_one_customers_failing_reads_do_not_stop_the_others(tmp_path, dbt_manifest):
    from stripe_emulator import EmulatorServer

    env, state, raw = environment(tmp_path, ISOLATION_CONTRACT)
    write(
        raw / "october.jsonl",
        *(
            line(f"{c}-1", c, "2025-10-10T10:00:00Z", {"tokens": 100 * (n + 1)})
            for n, c in enumerate(("cus_a", "cus_b", "cus_c"))
        ),
    )
    with (
        EmulatorServer(str(tmp_path / "stripe.sqlite"), port=0, grace_period_seconds=3600) as emulator,
        ChaosProxy(emulator.url) as proxy,
    ):
        env.update(STRIPE_API_KEY="sk_test_isolation", STRIPE_API_BASE=proxy.url)
        metering("clock", "advance", "--to", "2025-10-20T00:00:00Z", env=env)
        metering("run", env=env)
        cus_b, sub_b = query(
            state / "warehouse.duckdb",
            "select stripe_customer_id, stripe_subscription_id from ops.stripe_customers where customer_id = 'cus_b'",
        )[0]
        # From now on every read of cus_b's invoices, summaries and preview is refused by "Stripe".
        proxy.force_containing.update({f"customer={cus_b}": "404", f"subscription={sub_b}": "500"})
        metering("clock", "advance", "--to", "2025-11-01T00:30:00Z", env=env)
        run = subprocess.run([*METERING, "run"], env=env, capture_output=True, text=True, timeout=600, cwd=REPO_ROOT)
        assert run.returncode == 4, run.stdout + run.stderr
        assert "completed, but needs attention" in run.stdout, run.stdout
        assert "check stripe_customers_readable on period_close failed" in run.stdout, run.stdout
        # the failing customer named once, by the check's own description
        assert "Stripe could not be read for cus_b (3 problems)" in run.stdout, run.stdout
        assert "(customers: cus_b)" not in run.stdout, run.stdout
        for customer in ("cus_a", "cus_c"):  # closed inside the grace period and reconciled
            assert f"{customer} period 2025-10-01: final upload done" in run.stdout, run.stdout
        statuses = {r[0]: r[2] for r in reconciliation(state, "2025-10-01")}
        assert statuses["cus_a"] == statuses["cus_c"] == "match", statuses
        problems = query(state / "warehouse.duckdb", "select customer_id, step from ops.stripe_customer_problems")
        assert {c for c, _ in problems} == {"cus_b"} and {s for _, s in problems} >= {"stripe snapshot"}, problems

        proxy.force_containing.clear()  # Stripe answers again: cus_b is read, closed and reconciled
        metering("clock", "advance", "--to", "2025-11-01T02:00:00Z", env=env)
        metering("run", env=env)
    assert query(state / "warehouse.duckdb", "select count(*) from ops.stripe_customer_problems") == [(0,)]
    assert {r[0]: (r[2], r[3]) for r in reconciliation(state, "2025-10-01")} == {
        c: ("match", "open") for c in ("cus_a", "cus_b", "cus_c")
    }

"""Four customers, three with a problem of their own: an overflowing value, a total too precise for Stripe, a
Stripe customer deleted behind our back. The fourth is billed and reconciled; each of the three is named with
its reason; every run completes and its exit code says that something needs attention (4).

Through `metering run` only, against a standalone emulator, in October 2025.
"""

from __future__ import annotations

import subprocess

import pytest
import stripe

from tests.periods.test_period_close import METERING, REPO_ROOT, metering, query, write
from tests.periods.test_stripe_reads import environment, line, reconciliation

pytestmark = pytest.mark.slow

CONTRACT = """\
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
  - {id: cus_ok, billing_anchor: "2025-10-01T00:00:00Z"}
  - {id: cus_big, billing_anchor: "2025-10-01T00:00:00Z"}
  - {id: cus_precise, billing_anchor: "2025-10-01T00:00:00Z"}
  - {id: cus_gone, billing_anchor: "2025-10-01T00:00:00Z"}
"""
CUSTOMERS = ("cus_ok", "cus_big", "cus_precise", "cus_gone")


def run_needing_attention(env) -> str:
    run = subprocess.run([*METERING, "run"], env=env, capture_output=True, text=True, timeout=600, cwd=REPO_ROOT)
    assert run.returncode == 4, run.stdout + run.stderr
    assert "completed, but needs attention" in run.stdout and "failed step" not in run.stdout, run.stdout
    return run.stdout


def test_three_customers_with_problems_of_their_own_do_not_stop_the_fourth(tmp_path, dbt_manifest):
    from stripe_emulator import EmulatorServer

    env, state, raw = environment(tmp_path, CONTRACT)
    write(raw / "first.jsonl", *(line(f"{c}-1", c, "2025-10-02T10:00:00Z", {"tokens": 100}) for c in CUSTOMERS))
    with EmulatorServer(str(tmp_path / "stripe.sqlite"), port=0, grace_period_seconds=3600) as emulator:
        env.update(STRIPE_API_KEY="sk_test_fourcustomers", STRIPE_API_BASE=emulator.url)
        metering("clock", "advance", "--to", "2025-10-05T00:00:00Z", env=env)
        metering("run", env=env)
        gone = query(
            state / "warehouse.duckdb",
            "select stripe_customer_id from ops.stripe_customers where customer_id = 'cus_gone'",
        )[0][0]
        client = stripe.StripeClient("sk_test_reader", base_addresses={"api": emulator.url})
        client.v1.customers.delete(gone)  # deleted in Stripe's dashboard, say

        write(
            raw / "second.jsonl",
            line("cus_ok-2", "cus_ok", "2025-10-10T10:00:00Z", {"tokens": 250}),
            *(line(f"cus_big-{n}", "cus_big", "2025-10-10T10:00:00Z", {"tokens": "9e25"}) for n in range(20)),
            line("cus_precise-2", "cus_precise", "2025-10-10T10:00:00Z", {"tokens": "123456"}),
            line("cus_precise-3", "cus_precise", "2025-10-10T11:00:00Z", {"tokens": "0.000000000001"}),
            line("cus_gone-2", "cus_gone", "2025-10-10T10:00:00Z", {"tokens": 40}),
        )
        metering("clock", "advance", "--to", "2025-10-20T00:00:00Z", env=env)
        first = run_needing_attention(env)
        metering("clock", "advance", "--to", "2025-11-01T00:30:00Z", env=env)
        second = run_needing_attention(env)
        metering("clock", "advance", "--to", "2025-11-01T02:00:00Z", env=env)  # October's invoices finalize
        third = run_needing_attention(env)

    # 123556.000000000001 tokens: 18 significant digits, Stripe takes 15
    for out in (first, second, third):
        # each problem named with its customer and reason
        assert "quantity_too_precise" in out and "cus_precise" in out, out
        assert "usage_delivered" in out and "cus_gone" in out, out
    assert "cus_ok period 2025-10-01: final upload done" in second, second
    # the overflowing values are quarantined by name, the rest of that customer's usage is billed
    quarantined = query(
        state / "analytics.duckdb",
        "select customer_id, reason, count(*) from marts.rpt_quarantined_events group by all",
    )
    assert quarantined == [("cus_big", "value_out_of_range", 20)], quarantined
    # lines read = landed + quarantined + blank, for every file
    lines = query(state / "warehouse.duckdb", "select sum(line_count), sum(lines_blank) from raw.landed_files")[0]
    assert lines[0] == 4 + 24 and lines[1] == 0, lines

    statuses = {r[0]: (r[2], r[3], r[4], r[5]) for r in reconciliation(state, "2025-10-01")}
    assert statuses["cus_ok"] == ("match", "open", 175, 175), statuses  # (100 + 250) tokens at 0.5 cents
    assert statuses["cus_big"] == ("match", "open", 50, 50), statuses  # its valid event is billed
    results = dict(query(state / "warehouse.duckdb", "select customer_id, result from ops.period_reconciliation"))
    assert results["cus_ok"] == results["cus_big"] == "match", results

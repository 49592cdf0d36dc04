"""Period close end to end, through `metering run` and `metering clock advance` only (plus the read-only
`corrections preview` and `explain`): one Stripe test clock, four customers, four runs.

- cus_walk: usage in October; usage landing in the grace window out of order (a day-old "skewed"
  event, an event older than the others, the valid copy of a quarantined event, a conflicting
  duplicate that must not count); an event exactly at the period end (November's); the invoice
  finalizes; late usage (one event older than Stripe's 35 days) crosses a tier boundary; November's
  invoice carries the exact adjustment.
- cus_neg: a correction takes October below zero (billed as zero), later usage is carried correctly.
- cus_refund: a late correction becomes a negative adjustment.
- cus_held: its source `eu/` is complete only until before the period end: the draft is held, then
  released (finalized) once the watermark passes.
Every invoice amount is computed independently here, to the cent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import duckdb
import pytest

from metering_dagster.display import money, quantity

REPO_ROOT = Path(__file__).resolve().parents[2]
METERING = [sys.executable, "-m", "metering_dagster.cli"]

pytestmark = pytest.mark.slow

CONTRACT = """\
environment: test
currency: usd
grace_period: 1h
test_clock_start: "2026-10-01T00:00:00Z"
meters:
  - key: tokens
    display_name: Tokens
    action: inference
    value: metadata.tokens
    aggregation: sum
    unit: token
    price:
      model: graduated
      tiers:
        - {up_to: 2000, unit_amount_decimal: "0.5", flat_amount_decimal: "100"}
        - {up_to: inf, unit_amount_decimal: "0.25"}
customers:
  - {id: cus_walk, billing_anchor: "2026-10-01T00:00:00Z", interval: month}
  - {id: cus_neg, billing_anchor: "2026-10-01T00:00:00Z", interval: month}
  - {id: cus_refund, billing_anchor: "2026-10-01T00:00:00Z", interval: month}
  - {id: cus_held, billing_anchor: "2026-10-01T00:00:00Z", interval: month}
"""


def price_cents(quantity: Decimal) -> int:
    """The contract's graduated price, computed here independently: q <= 0 is billed as 0 (tier 1's flat fee)."""
    q = max(Decimal(quantity), Decimal(0))
    exact = Decimal(100) + min(q, Decimal(2000)) * Decimal("0.5") + max(q - 2000, Decimal(0)) * Decimal("0.25")
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def event(event_id: str, customer: str, ts: str, tokens) -> str:
    return json.dumps(
        {
            "event_id": event_id,
            "timestamp": ts,
            "customer_id": customer,
            "action": "inference",
            "metadata": {"tokens": tokens},
        }
    )


def write(path: Path, *lines: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines))


def metering(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    result = subprocess.run([*METERING, *args], env=env, capture_output=True, text=True, timeout=600, cwd=REPO_ROOT)
    assert result.returncode == 0, f"metering {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result


def query(path: Path, sql: str, params=()):
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.close()


def stripe_invoices(state: Path) -> dict[tuple[str, str], tuple[int, str, list[tuple[str, int]]]]:
    """(customer, period start date) -> (total, status, [(line description, amount)]) read from Stripe itself."""
    import stripe

    from stripe_emulator import EmulatorServer

    out = {}
    with EmulatorServer(str(state / "stripe_emulator.sqlite"), port=0, grace_period_seconds=3600) as srv:
        client = stripe.StripeClient("sk_test_check", base_addresses={"api": srv.url})
        for customer in client.v1.customers.list({"limit": 100}).auto_paging_iter():
            cid = customer.metadata["metering_customer_id"]
            for inv in client.v1.invoices.list({"customer": customer.id, "limit": 100}).auto_paging_iter():
                from datetime import datetime

                start = datetime.fromtimestamp(inv.period_start, tz=UTC).date().isoformat()
                lines = [
                    (ln.description or "", ln.amount)
                    for ln in client.v1.invoices.line_items.list(inv.id, {"limit": 100}).auto_paging_iter()
                ]
                out[(cid, start)] = (inv.total, inv.status, lines)
    return out


@pytest.fixture
def env(tmp_path, dbt_manifest):
    state, raw = tmp_path / "state", tmp_path / "raw"
    raw.mkdir()
    (tmp_path / "metering.yml").write_text(CONTRACT)
    e = dict(os.environ)
    e.update(
        METERING_STATE_DIR=str(state),
        METERING_RAW_DIR=str(raw),
        METERING_CONTRACT=str(tmp_path / "metering.yml"),
        DAGSTER_HOME=str(state / "dagster_home"),
    )
    (state / "dagster_home").mkdir(parents=True)
    return {"env": e, "state": state, "raw": raw}


def test_periods_close_right_through_late_usage_corrections_and_holds(env):
    e, state, raw = env["env"], env["state"], env["raw"]
    W, N, R, H = "cus_walk", "cus_neg", "cus_refund", "cus_held"

    # -- A: October's usage; the eu source is complete only until Oct 31 -------------------------------
    write(
        raw / "a1.jsonl",
        event("w1", W, "2026-10-05T10:00:00Z", 600),
        event("w2", W, "2026-10-20T10:00:00Z", 300),
        event("w_end", W, "2026-11-01T00:00:00Z", 50),  # exactly at the period end: November's
        event("q1", W, "2026-10-22T10:00:00Z", "abc"),  # quarantined (invalid_value)
        event("n1", N, "2026-10-10T10:00:00Z", 100),
        event("n2", N, "2026-10-15T10:00:00Z", -150),  # a correction below zero
        event("r1", R, "2026-10-08T10:00:00Z", 500),
    )
    write(raw / "eu" / "h1.jsonl", event("h1", H, "2026-10-25T10:00:00Z", 200))
    (raw / "eu" / "WATERMARK").write_text("2026-10-31T00:00:00Z\n")
    metering("clock", "advance", "--to", "2026-11-01T00:20:00Z", env=e)
    run1 = metering("run", env=e).stdout
    assert f"{W} period 2026-10-01: final upload done" in run1 and "inside the grace period" in run1, run1
    assert "ALERT: invoice" in run1 and f"{H} period 2026-10-01 held" in run1, run1

    # -- B: in the grace window, out of order ----------------------------------------------------------
    write(
        raw / "a2.jsonl",
        event("w3", W, "2026-10-03T10:00:00Z", 100),  # older than what was sent
        event("w_skew", W, "2026-10-31T23:30:00Z", 10),  # yesterday's usage reported today
        event("q1", W, "2026-10-22T10:00:00Z", 5),  # valid copy of a quarantined event: counts
        event("w1", W, "2026-10-05T10:00:00Z", 999),
    )  # a re-sent event id: a duplicate, does not count
    metering("clock", "advance", "--to", "2026-11-01T00:40:00Z", env=e)
    run2 = metering("run", env=e).stdout
    assert f"{W} period 2026-10-01: final upload done" in run2, run2
    oct_walk = Decimal(600 + 300 + 100 + 10 + 5)
    assert (
        query(
            state / "analytics.duckdb",
            "select quantity from marts.fct_usage_by_period where customer_id = ? and period_start = '2026-10-01'",
            [W],
        )[0][0]
        == oct_walk
    )
    assert (
        query(state / "analytics.duckdb", "select count(*) from marts.rpt_duplicate_events where event_id = 'w1'")[0][0]
        == 1
    )

    # -- C: the grace period ends: Stripe finalizes, except the held invoice -------------------------
    metering("clock", "advance", "--to", "2026-11-01T02:00:00Z", env=e)

    # -- D: late usage for the closed period; the eu source becomes complete ----------------------------
    write(
        raw / "a3.jsonl",
        event("w4", W, "2026-10-12T10:00:00Z", 1500),  # crosses the 2000 tier boundary
        event("w5", W, "2026-10-02T10:00:00Z", 20),  # more than 35 days before Stripe's time at upload
        event("n3", N, "2026-10-20T10:00:00Z", 80),  # back above zero
        event("r2", R, "2026-10-09T10:00:00Z", -200),
    )  # a late correction
    write(raw / "eu" / "h2.jsonl", event("h2", H, "2026-10-26T10:00:00Z", 50))
    (raw / "eu" / "WATERMARK").write_text("2026-11-01T00:00:00Z\n")
    late_walk = oct_walk + 1500 + 20
    preview = metering("corrections", "preview", env=e).stdout
    assert f"{W}: {(price_cents(late_walk) - price_cents(oct_walk)) / 100:+,.2f} USD in total" in preview, preview
    assert f"{R}: {(price_cents(Decimal(300)) - price_cents(Decimal(500))) / 100:+,.2f} USD in total" in preview, (
        preview
    )
    assert "1 correction (negative values)" in preview and "the next invoice, as an adjustment" in preview, preview
    metering("clock", "advance", "--to", "2026-11-08T00:00:00Z", env=e)
    run3 = metering("run", env=e).stdout
    assert f"{H} period 2026-10-01 released" in run3, run3
    assert "late-usage adjustments: 3 new" in run3, run3

    # -- E: the next period closes: November's invoices carry the adjustments -----------------------------
    (raw / "eu" / "WATERMARK").write_text("2026-12-01T00:00:00Z\n")
    metering("clock", "advance", "--to", "2026-12-01T02:00:00Z", env=e)
    run4 = metering("run", env=e).stdout
    assert "late-usage adjustments: 0 new" in run4, run4

    invoices = stripe_invoices(state)
    adj_walk = price_cents(late_walk) - price_cents(oct_walk)
    adj_neg = price_cents(Decimal(30)) - price_cents(Decimal(0))
    adj_refund = price_cents(Decimal(300)) - price_cents(Decimal(500))
    expected = {
        (W, "2026-10-01"): price_cents(oct_walk),
        (W, "2026-11-01"): price_cents(Decimal(50)) + adj_walk,
        (N, "2026-10-01"): price_cents(Decimal(-50)),
        (N, "2026-11-01"): price_cents(Decimal(0)) + adj_neg,
        (R, "2026-10-01"): price_cents(Decimal(500)),
        (R, "2026-11-01"): price_cents(Decimal(0)) + adj_refund,
        (H, "2026-10-01"): price_cents(Decimal(250)),
        (H, "2026-11-01"): price_cents(Decimal(0)),
    }
    assert adj_walk == 626 and adj_neg == 15 and adj_refund == -100
    assert {k: v[0] for k, v in invoices.items()} == expected, invoices
    assert all(v[1] in ("open", "paid") for v in invoices.values()), invoices
    walk_nov_lines = invoices[(W, "2026-11-01")][2]
    assert any("Late usage adjustment, tokens, period 2026-10-01" in d and a == adj_walk for d, a in walk_nov_lines)

    # Reconciliation: no difference, per line and per customer after finalization.
    statuses = query(
        state / "analytics.duckdb",
        "select distinct status from marts.rpt_reconciliation where period_start < '2026-12-01'",
    )
    assert statuses == [("match",)], statuses
    results = query(
        state / "warehouse.duckdb", "select customer_id, result from ops.period_reconciliation order by 1, 2"
    )
    assert {r for _, r in results} == {"match"} and len(results) == 8, results
    # Adjustments: three in the ledger, each once in Stripe, with the period and the late events.
    rows = query(
        state / "warehouse.duckdb",
        "select customer_id, amount_cents, late_event_ids, status from ops.stripe_adjustments order by 1",
    )
    assert rows == [
        (N, adj_neg, "n3", "sent"),
        (R, adj_refund, "r2", "sent"),
        (W, adj_walk, "w5,w4", "sent"),
    ] or sorted(rows) == sorted(
        [(N, adj_neg, "n3", "sent"), (R, adj_refund, "r2", "sent"), (W, adj_walk, "w4,w5", "sent")]
    ), rows

    # Explain: today's numbers, then "as of" before the late usage landed: what October's invoice billed.
    now = metering("explain", "--customer", W, "--period", "2026-10-01", env=e).stdout
    assert f"tokens: quantity {quantity(late_walk)} tokens" in now and "late adjustment #1" in now, now
    csv_path = Path(now.strip().splitlines()[-1].split("event ids: ")[1])
    ids = {line.split(",")[1] for line in csv_path.read_text().splitlines()[1:]}
    assert ids == {"w1", "w2", "w3", "w4", "w5", "w_skew", "q1"}
    before_late = query(
        state / "warehouse.duckdb", "select max(landed_at) from raw.landed_files where source_file = 'a2.jsonl'"
    )[0][0]
    then = metering(
        "explain", "--customer", W, "--period", "2026-10-01", "--as-of", before_late.isoformat(), env=e
    ).stdout
    assert f"tokens: quantity {quantity(oct_walk)} tokens, amount {money(price_cents(oct_walk), 'usd')}" in then, then

"""Drive `metering run` as a user would (a subprocess in its own process group), against the emulator
behind the chaos proxy, and read Stripe's side independently of the pipeline."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import stripe

REPO_ROOT = Path(__file__).resolve().parents[2]
METERING = [sys.executable, "-m", "metering_dagster.cli"]
# `metering` that kills itself at a crash point (the point first): the same command, with the seams patched
CRASHING_METERING = [sys.executable, str(Path(__file__).with_name("crashing_run.py"))]
SECRET_KEY = "sk_test_" + "faultsoak" + "9Zq4Lw7Xv2Hn5Rt8Kp3Jm6Yd1Bc"  # a test key to look for afterwards


@dataclass
class Runs:
    env: dict[str, str]
    outputs: list[str] = field(default_factory=list)
    kills: int = 0

    def metering(
        self, *args: str, crash: str | None = None, extra: dict[str, str] | None = None, timeout: int = 600
    ) -> subprocess.CompletedProcess:
        env = dict(self.env, **(extra or {}))
        command = [*CRASHING_METERING, crash] if crash else METERING
        result = subprocess.run(
            [*command, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=REPO_ROOT,
            start_new_session=True,
        )
        self.outputs += [result.stdout, result.stderr]
        if crash:
            assert result.returncode == -9, (
                f"expected a kill at {crash}: {result.returncode}\n{result.stdout}{result.stderr}"
            )
            self.kills += 1
        return result

    def popen(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(
            [*METERING, *args],
            env=self.env,
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )


def query(state: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(state / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def stripe_vs_ours(emulator_url: str, state: Path) -> tuple[int, list[tuple]]:
    """Every (customer, meter, period) of marts.fct_usage_by_period against Stripe's meter event summaries,
    read straight from the emulator (not through the pipeline). Returns (rows compared, differences)."""
    # the emulator itself answers 500s at random: read with retries (10 attempts)
    from metering_dagster.billing.retry import RetryingRequestsClient, RetryPolicy

    client = stripe.StripeClient(
        "sk_test_reader",
        base_addresses={"api": emulator_url, "meter_events": emulator_url},
        max_network_retries=9,
        http_client=RetryingRequestsClient(RetryPolicy(max_attempts=10, base_seconds=0.01)),
    )
    meters = {m.event_name: m.id for m in client.v1.billing.meters.list({"limit": 100}).auto_paging_iter()}
    customers = {
        (c.metadata.to_dict() if c.metadata else {}).get("metering_customer_id"): c.id
        for c in client.v1.customers.list({"limit": 100}).auto_paging_iter()
    }
    ours = query(
        state,
        "select customer_id, meter, epoch(period_start)::bigint, epoch(period_end)::bigint, "
        "quantity::varchar from marts.fct_usage_by_period order by all",
    )
    differences = []
    for customer, meter, start, end, quantity in ours:
        summaries = client.v1.billing.meters.event_summaries.list(
            meters[meter], {"customer": customers[customer], "start_time": start, "end_time": end, "limit": 100}
        )
        theirs = sum(
            (
                Decimal(repr(s.aggregated_value))
                if isinstance(s.aggregated_value, float)
                else Decimal(str(s.aggregated_value))
                for s in summaries.auto_paging_iter()
            ),
            Decimal(0),
        )
        if theirs != Decimal(quantity):
            differences.append(
                (customer, meter, datetime.utcfromtimestamp(start).date().isoformat(), quantity, str(theirs))
            )
    return len(ours), differences


def scan_for(secret: str, texts: list[str], folder: Path) -> list[str]:
    """Where the secret appears: in run outputs or any file under folder (Dagster's event logs, run storage,
    compute logs, dbt logs, the warehouse)."""
    found = [f"output #{i}" for i, t in enumerate(texts) if secret in (t or "")]
    needle = secret.encode()
    for path in folder.rglob("*"):
        if path.is_file():
            try:
                if needle in path.read_bytes():
                    found.append(str(path))
            except OSError:
                pass
    return found


def print_figures(title: str, figures: dict) -> None:
    print(f"\n{title}: " + json.dumps(figures, indent=2, default=str))

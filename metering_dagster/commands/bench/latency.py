"""The hard-stop latency: from a usage file that takes a customer past a `block` budget, complete in the raw folder,
to `GET /v1/entitlements/{customer}` answering `block`.

The path measured is the deployed one, step by step: a poller looks at the raw folder every `interval` seconds with
the budget sensor's own functions (what the Dagster daemon does every 10 s), then starts `metering run --budgets` in a
process of its own (a sensor's run starts one too); `metering serve` runs beside it, in its own process, over the
analysts' copy the run publishes; a client asks it every 0.1 s until it answers `block`.
"""

from __future__ import annotations

import json
import re
import secrets
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from metering_dagster.commands.bench.generate import write_api_calls
from metering_dagster.landing.land import list_log_files, new_or_changed
from metering_dagster.settings import subprocess_environment

METERING = [sys.executable, "-m", "metering_dagster.cli"]
ASK_EVERY_SECONDS = 0.1
SERVE_START_SECONDS = 60
CROSSING_TIMEOUT_SECONDS = 600


@dataclass
class BudgetRun:
    """One `metering run --budgets` started by the poller: when it saw the files, started and ended."""

    seen_at: float  # perf_counter
    ended_at: float
    started_epoch: float  # time.time(), to place the run's own events (Dagster's timestamps) inside the process
    ended_epoch: float
    exit_code: int
    run_id: str | None
    output: str


@dataclass
class Poller:
    """Looks at the raw folder every `interval` seconds, on a fixed beat like a sensor, and runs the budget job for
    new or changed files: one run at a time, the files of a tick in one run."""

    raw_dir: Path
    interval: float
    env: dict[str, str]
    runs: list[BudgetRun] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._seen = list_log_files(self.raw_dir)
        self._thread = threading.Thread(target=self._loop, name="budget-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=CROSSING_TIMEOUT_SECONDS)

    def _loop(self) -> None:
        beat = time.perf_counter()
        while not self._stop.is_set():
            current = list_log_files(self.raw_dir)
            if new_or_changed(current, self._seen):
                seen_at, started_epoch = time.perf_counter(), time.time()
                self._seen = current
                run = subprocess.run([*METERING, "run", "--budgets"], env=self.env, capture_output=True, text=True)
                found = re.search(r"metering run --budgets ([0-9a-f]{8})", run.stdout)
                self.runs.append(
                    BudgetRun(
                        seen_at,
                        time.perf_counter(),
                        started_epoch,
                        time.time(),
                        run.returncode,
                        found.group(1) if found else None,
                        run.stdout + run.stderr,
                    )
                )
            # the next tick on the beat (a run longer than the interval: the first tick after it)
            beat += self.interval * (1 + int((time.perf_counter() - beat) // self.interval))
            self._stop.wait(max(0.0, beat - time.perf_counter()))


class Server:
    """`metering serve` on a free port, with a token of its own."""

    def __init__(self, env: dict[str, str]):
        self.token = secrets.token_urlsafe(32)
        self.process = subprocess.Popen(
            [*METERING, "serve", "--port", "0"],
            env={**env, "METERING_API_TOKEN": self.token},
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        line = self.process.stdout.readline()  # "metering serve: entitlements API on http://127.0.0.1:PORT (reads …)"
        found = re.search(r"on (http://\S+)", line)
        if not found:
            self.process.kill()
            raise RuntimeError(f"metering serve did not start: {line!r}")
        self.base = found.group(1)

    def access(self, customer: str) -> str | None:
        request = urllib.request.Request(
            f"{self.base}/v1/entitlements/{customer}", headers={"Authorization": f"Bearer {self.token}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                return json.load(answer).get("access")
        except OSError:  # 503 before a publication, or the server busy: ask again
            return None

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _wait_for_block(server: Server, customer: str) -> float:
    deadline = time.perf_counter() + CROSSING_TIMEOUT_SECONDS
    while time.perf_counter() < deadline:
        if server.access(customer) == "block":
            return time.perf_counter()
        time.sleep(ASK_EVERY_SECONDS)
    raise SystemExit(f"bench latency: {customer} not blocked after {CROSSING_TIMEOUT_SECONDS} s")


def _inside(runs: list[BudgetRun]) -> dict[str, dict[str, float]]:
    """Where each budget run's process spent its time, from the Dagster instance's event log: from the process's
    start to the run's start (Python, Dagster, the code location, dbt's manifest), each step (the dbt step includes
    dbt's own start), and from the run's end to the process's exit (the summary's figures)."""
    import dagster as dg

    by_id = {run.run_id: run for run in runs if run.run_id}
    out: dict[str, dict[str, float]] = {}
    with dg.DagsterInstance.get() as instance:
        for record in instance.get_runs(filters=dg.RunsFilter(job_name="budget_job")):
            process = by_id.get(record.run_id[:8])
            if process is None:
                continue
            times: dict[str, float] = {"before_the_run": 0.0}
            started: dict[str, float] = {}
            for entry in instance.all_logs(record.run_id):
                kind = entry.dagster_event.event_type_value if entry.dagster_event else None
                if kind == "PIPELINE_START":
                    times["before_the_run"] = round(entry.timestamp - process.started_epoch, 2)
                elif kind == "STEP_START":
                    started[entry.step_key] = entry.timestamp
                elif kind == "STEP_SUCCESS" and entry.step_key in started:
                    times[entry.step_key] = round(entry.timestamp - started[entry.step_key], 2)
                elif kind == "PIPELINE_SUCCESS":
                    times["after_the_run"] = round(process.ended_epoch - entry.timestamp, 2)
            out[process.run_id] = times
    return out


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {}
    p95 = ordered[min(len(ordered) - 1, max(0, -(-95 * len(ordered) // 100) - 1))]  # nearest rank
    return {
        "p50": round(statistics.median(ordered), 2),
        "p95": round(p95, 2),
        "max": round(ordered[-1], 2),
    }


def measure_latency(
    raw_dir: Path,
    customers: list[str],
    calls_to_block: int,
    at,
    *,
    crossings: int = 10,
    interval: float = 10.0,
    seed: int = 17,
) -> dict:
    """`crossings` customers taken past the block budget one after another, one new file each; the time from the
    file's rename to the API's `block`, with where it went."""
    import random

    rng = random.Random(seed)
    # Like the budget sensor, which waits for a run of either job to end: a budget run waits for the run lock.
    env = subprocess_environment(METERING_LOCK_WAIT_SECONDS=str(CROSSING_TIMEOUT_SECONDS))
    out_dir = raw_dir / "crossings"
    out_dir.mkdir(parents=True, exist_ok=True)
    server = Server(env)
    poller = Poller(raw_dir, interval, env)
    rows = []
    try:
        deadline = time.perf_counter() + SERVE_START_SECONDS
        while server.access(customers[0]) is None:  # published by the bench's earlier runs
            if time.perf_counter() > deadline:
                raise SystemExit("bench latency: metering serve answers nothing")
            time.sleep(ASK_EVERY_SECONDS)
        poller.start()
        for i, customer in enumerate(customers[:crossings]):
            if server.access(customer) != "allow":
                raise SystemExit(f"bench latency: {customer} is not allowed before its crossing")
            time.sleep(rng.uniform(0, interval))  # files arrive at any point of the poll's beat
            runs_before = len(poller.runs)
            write_api_calls(out_dir / f"crossing-{i:03d}.jsonl", customer, calls_to_block, f"evt_cross_{i:03d}", at)
            t0 = time.perf_counter()
            t1 = _wait_for_block(server, customer)
            while len(poller.runs) == runs_before:  # the run answered; wait for its process to end
                time.sleep(ASK_EVERY_SECONDS)
            run = poller.runs[runs_before]
            if run.exit_code not in (0, 4):
                raise SystemExit(f"bench latency: metering run --budgets exited {run.exit_code}:\n{run.output}")
            rows.append({"customer": customer, "t0": t0, "t1": t1, "run": run})
            at += timedelta(seconds=2)
    finally:
        poller.stop()
        server.stop()

    inside = _inside([row["run"] for row in rows])
    crossings_out = []
    for row in rows:
        run: BudgetRun = row["run"]
        crossings_out.append(
            {
                "customer": row["customer"],
                "seconds": round(row["t1"] - row["t0"], 2),
                "waiting_for_the_poll": round(run.seen_at - row["t0"], 2),
                "run_process": round(run.ended_at - run.seen_at, 2),
                # negative: the API answered `block` before the run's process had exited (it publishes, then
                # prints its summary)
                "answer_after_the_run": round(row["t1"] - run.ended_at, 2),
                "run_id": run.run_id,
                "inside_the_run": inside.get(run.run_id or "", {}),
            }
        )
    total = [c["seconds"] for c in crossings_out]
    parts = ("waiting_for_the_poll", "run_process", "answer_after_the_run")
    names = sorted({name for c in crossings_out for name in c["inside_the_run"]})
    return {
        "crossings": len(crossings_out),
        "poll_interval_seconds": interval,
        "not_measured": [
            f"a deployed budget_usage_sensor waits like this poll (0 to {interval:g} s when its interval is"
            f" {interval:g} s), plus the Dagster daemon's tick and the run queue's launch; its run's process loads the"
            " code location as `metering run --budgets` does (in before_the_run)",
            "a file that lands during a metering job run waits for it: neither sensor starts a run while a run of"
            " either job is queued or under way, and `metering run --budgets` waits for the run lock; the block is"
            " answered when that run publishes (if its landing saw the file) or by the budget run after it",
        ],
        "calls_to_block": calls_to_block,
        "seconds": _percentiles(total),
        "breakdown_seconds": {part: _percentiles([c[part] for c in crossings_out]) for part in parts},
        "inside_the_run_median_seconds": {
            name: round(statistics.median(c["inside_the_run"].get(name, 0.0) for c in crossings_out), 2)
            for name in names
        },
        "by_crossing": crossings_out,
    }

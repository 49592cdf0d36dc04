"""Benchmark of the Stripe emulator (not a test): v2 meter event stream events/s and v1 requests/s.

Starts `python -m stripe_emulator` in its own process on a temporary state file and drives it with the real
stripe SDK from a few client threads. Targets: >= 5,000 events/s on the v2 stream, >= 300 requests/s on v1.

    python bench/emulator_bench.py [--seconds 5] [--threads 4]

Prints the figures and writes them to bench/results/emulator.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import stripe

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"v2_stream_events_per_s": 5000, "v1_requests_per_s": 300}


def start_emulator(state: str):
    proc = subprocess.Popen(
        [sys.executable, "-m", "stripe_emulator", "--port", "0", "--state", state],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    url = proc.stdout.readline().strip()
    if not url.startswith("http"):
        proc.kill()
        raise SystemExit("emulator did not start")
    return proc, url


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (Linux /proc), to tell the emulator's cost from the SDK's."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def client(key: str, url: str) -> stripe.StripeClient:
    return stripe.StripeClient(key, base_addresses={"api": url, "meter_events": url}, max_network_retries=0)


def run_threads(n: int, seconds: float, work) -> int:
    counts = [0] * n
    deadline = time.perf_counter() + seconds

    def loop(i):
        while time.perf_counter() < deadline:
            counts[i] += work(i)

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--threads", type=int, default=4)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_emulator(os.path.join(tmp, "bench.sqlite"))
        try:
            c = client("sk_test_bench", url)
            c.v1.billing.meters.create(
                {"display_name": "bench", "event_name": "bench", "default_aggregation": {"formula": "sum"}}
            )
            customers = [c.v1.customers.create({"name": f"bench {i}"}).id for i in range(10)]
            now = int(time.time()) - 60

            # v2 stream: one session token, batches of 100 events per request
            token = c.v2.billing.meter_event_session.create().authentication_token
            streams = [client(token, url) for _ in range(args.threads)]

            def stream_batch(i):
                events = [
                    {
                        "event_name": "bench",
                        "identifier": uuid.uuid4().hex,
                        "timestamp": now,
                        "payload": {"stripe_customer_id": customers[j % 10], "value": "1"},
                    }
                    for j in range(100)
                ]
                streams[i].v2.billing.meter_event_stream.create({"events": events})
                return 100

            t0, cpu0 = time.perf_counter(), cpu_seconds(proc.pid)
            events = run_threads(args.threads, args.seconds, stream_batch)
            stream_rate = events / (time.perf_counter() - t0)
            stream_cpu = (cpu_seconds(proc.pid) or 0) - (cpu0 or 0)

            v1 = [client("sk_test_bench", url) for _ in range(args.threads)]

            def v1_event(i):
                v1[i].v1.billing.meter_events.create(
                    {
                        "event_name": "bench",
                        "timestamp": now,
                        "payload": {"stripe_customer_id": customers[i % 10], "value": "1"},
                    }
                )
                return 1

            t0, cpu0 = time.perf_counter(), cpu_seconds(proc.pid)
            requests = run_threads(args.threads, args.seconds, v1_event)
            v1_rate = requests / (time.perf_counter() - t0)
            v1_cpu = (cpu_seconds(proc.pid) or 0) - (cpu0 or 0)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    result = {
        "v2_stream_events_per_s": round(stream_rate),
        "v1_requests_per_s": round(v1_rate),
        # what one core of emulator could take, from its own CPU time (the SDK clients share the machine)
        "emulator_cpu_ms_per_stream_event": round(1000 * stream_cpu / events, 4) if events else None,
        "emulator_cpu_ms_per_v1_request": round(1000 * v1_cpu / requests, 3) if requests else None,
        "v2_stream_events_per_emulator_cpu_s": round(events / stream_cpu) if stream_cpu else None,
        "v1_requests_per_emulator_cpu_s": round(requests / v1_cpu) if v1_cpu else None,
        "load_average_1m": os.getloadavg()[0],
        "v2_stream_events": events,
        "v1_requests": requests,
        "seconds_each": args.seconds,
        "client_threads": args.threads,
        "cpus": os.cpu_count(),
        "targets": TARGETS,
        "meets_targets": stream_rate >= TARGETS["v2_stream_events_per_s"] and v1_rate >= TARGETS["v1_requests_per_s"],
    }
    out = ROOT / "bench" / "results" / "emulator.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0 if result["meets_targets"] else 1


if __name__ == "__main__":
    sys.exit(main())

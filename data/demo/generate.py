"""Write the demo usage logs under data/demo/raw (deterministic: same output every run).

    python data/demo/generate.py

About 3,000 events dated 2026-10-01..2026-10-31 UTC for the customers of metering.yml, in
three files (one gzipped, one in a subfolder), with exact duplicates, one conflicting
duplicate, one line for each quarantine reason, timestamps with offsets and decimal values.
"""

from __future__ import annotations

import gzip
import json
import random
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

RAW = Path(__file__).resolve().parent / "raw"
CUSTOMERS = ["cus_acme", "cus_globex", "cus_initech", "cus_umbrella"]
START = datetime(2026, 10, 1, tzinfo=UTC)
END = datetime(2026, 11, 1, tzinfo=UTC)  # exclusive: no event after 2026-10-31T23:59:59Z
OFFSETS = [timedelta(0), timedelta(hours=2), timedelta(hours=-5), timedelta(hours=5, minutes=30)]


def timestamp(rng: random.Random, at: datetime):
    """Integer epoch seconds, or RFC 3339 with an offset (the same instant)."""
    if rng.random() < 0.5:
        return int(at.timestamp())
    offset = rng.choice(OFFSETS)
    return at.astimezone(timezone(offset)).isoformat().replace("+00:00", "Z")


def event(rng: random.Random, n: int, at: datetime) -> dict:
    customer = rng.choice(CUSTOMERS)
    kind = rng.choices(
        ["model_inference", "api_request", "session_sample", "seat_update", "storage_snapshot", "user_active"],
        weights=[40, 25, 10, 3, 5, 17],
    )[0]
    metadata: dict = {}
    if kind == "model_inference":
        metadata = {"model": rng.choice(["gpt-4o", "gpt-4o-mini", "o1-preview"]), "input_tokens": rng.randint(50, 4000)}
    elif kind == "session_sample":
        metadata = {"concurrent": rng.randint(1, 42)}
    elif kind == "seat_update":
        metadata = {"seats": rng.randint(3, 25)}
    elif kind == "storage_snapshot":
        metadata = {"gb": f"{rng.randint(1, 500)}.{rng.randint(0, 999):03d}"}  # decimal string
    elif kind == "user_active":
        metadata = {"user_id": f"user_{rng.randint(1, 14)}"}
    elif kind == "api_request":
        metadata = {"endpoint": rng.choice(["/v1/chat", "/v1/embed"])}
    return {
        "event_id": f"evt_{n:06d}",
        "timestamp": timestamp(rng, at),
        "customer_id": customer,
        "action": kind,
        "value": None,
        "metadata": metadata,
        **({"environment": "test"} if rng.random() < 0.3 else {}),
    }


def main() -> None:
    rng = random.Random(20261001)
    span = (END - START).total_seconds()
    instants = sorted(START + timedelta(seconds=rng.randrange(int(span))) for _ in range(3000))
    events = [event(rng, i, at) for i, at in enumerate(instants)]
    for e in events:
        del e["value"]
    # decimal values whose float sum rounds the other way: 0.1 + 0.2 + ... exact in DECIMAL
    events.append(
        {
            "event_id": "evt_decimal_a",
            "timestamp": "2026-10-31T23:59:59Z",
            "customer_id": "cus_acme",
            "action": "storage_snapshot",
            "metadata": {"gb": 0.1},
        }
    )
    files = {"2026-10-01.jsonl": [], "2026-10-11.jsonl.gz": [], "eu/2026-10-21.jsonl": []}
    for e in events:
        name = (
            "2026-10-01.jsonl"
            if e["event_id"] < "evt_000970"
            else ("2026-10-11.jsonl.gz" if e["event_id"] < "evt_001940" else "eu/2026-10-21.jsonl")
        )
        files[name].append(json.dumps(e))
    late = files["eu/2026-10-21.jsonl"]
    # exact duplicates (a retried upload) and one conflicting duplicate
    late.extend(files["2026-10-01.jsonl"][100:105])
    conflict = json.loads(files["2026-10-11.jsonl.gz"][7])
    conflict["metadata"] = {**conflict["metadata"], "note": "resent with a different payload"}
    late.append(json.dumps(conflict))
    # one line per quarantine reason
    ok = {"timestamp": "2026-10-20T12:00:00Z", "customer_id": "cus_acme", "action": "api_request", "metadata": {}}
    late.extend(
        [
            '{"event_id": "bad_json", "timestamp": ',  # invalid_json
            json.dumps({**ok, "event_id": "bad_missing", "customer_id": None}),  # missing_field
            json.dumps({**ok, "event_id": "x" * 101}),  # invalid_field
            json.dumps(
                {**ok, "event_id": "bad_ts", "timestamp": "2026-10-20 12:00:00"}
            ),  # invalid_timestamp (no offset)
            json.dumps({**ok, "event_id": "bad_future", "timestamp": "2099-01-01T00:00:00Z"}),  # timestamp_in_future
            json.dumps({**ok, "event_id": "bad_env", "environment": "live"}),  # wrong_environment
            json.dumps({**ok, "event_id": "bad_customer", "customer_id": "cus_unknown"}),  # unknown_customer
            json.dumps({**ok, "event_id": "bad_action", "action": "model_training"}),  # unmetered_action
            '{"event_id": "bad_value", "timestamp": "2026-10-20T12:00:00Z", "customer_id": "cus_acme", '
            '"action": "storage_snapshot", "metadata": {"gb": 0.30000000000000004444}}',  # invalid_value (>15 digits)
        ]
    )
    RAW.mkdir(parents=True, exist_ok=True)
    for name, lines in files.items():
        path = RAW / name
        path.parent.mkdir(parents=True, exist_ok=True)
        data = ("\n".join(lines) + "\n").encode()
        if name.endswith(".gz"):
            path.write_bytes(gzip.compress(data, mtime=0))
        else:
            path.write_bytes(data)
        print(f"wrote {path.relative_to(RAW.parent)}: {len(lines)} lines")


if __name__ == "__main__":
    main()

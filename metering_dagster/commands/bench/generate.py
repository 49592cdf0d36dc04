"""Generate a realistic month of usage logs for a contract, vectorized with polars.

The mix: every meter of the contract fed in proportion, 2% re-sent duplicates, 5% of events
landing late (up to 9 days after their timestamp), a few bad lines. One file per landing day.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from metering_dagster.contract import Contract, Meter

MONTH_START = datetime(2026, 10, 1, tzinfo=UTC)
DAYS = 30


@dataclass(frozen=True)
class GeneratedDay:
    files: list[Path]
    events: int
    duplicates: int
    bad_lines: int


def customers_for(n_events: int) -> list[str]:
    """Thousands of customers at volume, a few dozen for small runs."""
    return [f"cus_bench_{i:05d}" for i in range(max(20, min(5000, n_events // 1000)))]


# The budget of the latency stage: a cap on API calls for every customer, which blocks at 100%.
BLOCK_BUDGET_KEY = "api_call_cap"
BLOCK_BUDGET_METER = "api_calls"
BLOCK_BUDGET_ACTION = "api_request"


def block_budget_limit(n_events: int, customers: list[str]) -> int:
    """Every customer's events of the whole month (all meters), as the cap on its API calls alone: a customer gets
    about one event in six on that meter, so no generated month comes near it."""
    return max(100, n_events // len(customers))


def bench_contract_yaml(demo_contract: Path, customers: list[str], block_limit: int | None = None) -> str:
    """The demo contract's meters and prices with the bench customers. Budgets: none (the demo's name its own
    customers), or with `block_limit` one `block` budget on API calls for every customer (the latency stage adds it
    after the other stages: a quantity budget makes one Stripe billing alert per customer in the metering job, which
    would change what the other stages measure)."""
    import yaml

    doc = yaml.safe_load(demo_contract.read_text())
    doc["customers"] = [
        {"id": c, "billing_anchor": MONTH_START.strftime("%Y-%m-%dT%H:%M:%SZ"), "interval": "month"} for c in customers
    ]
    doc.pop("test_clock_start", None)
    doc["budgets"] = []
    if block_limit is not None:
        doc["budgets"] = [
            {
                "key": BLOCK_BUDGET_KEY,
                "customer": "*",
                "meter": BLOCK_BUDGET_METER,
                "quantity": str(block_limit),
                "on_exceed": "block",
            }
        ]
    return yaml.safe_dump(doc, sort_keys=False)


def write_api_calls(path: Path, customer: str, calls: int, first_id: str, at: datetime) -> None:
    """A complete log file of `calls` API calls of one customer at `at` (one a millisecond), written under a
    temporary name and renamed into place, as the README asks of every producer."""
    start = int(at.timestamp())
    lines = [
        json.dumps(
            {
                "event_id": f"{first_id}_{i:07d}",
                "timestamp": start + i // 1000,
                "customer_id": customer,
                "action": BLOCK_BUDGET_ACTION,
                "metadata": {},
            }
        )
        for i in range(calls)
    ]
    partial = path.with_name(path.name + ".partial")
    partial.write_text("\n".join(lines) + "\n")
    partial.rename(path)


def _nested(path: str, value_expr: pl.Expr) -> tuple[str, pl.Expr]:
    """(top-level key, JSON text expr) for a dotted path, e.g. metadata.tokens -> ("metadata", {"tokens": v})."""
    parts = path.split(".")
    expr = value_expr
    for part in reversed(parts[1:]):
        expr = pl.concat_str([pl.lit(json.dumps(part) + ":"), expr])
        expr = pl.concat_str([pl.lit("{"), expr, pl.lit("}")])
    return parts[0], expr


def _meter_lines(meter: Meter, frame: pl.DataFrame, rng: np.random.Generator) -> pl.Series:
    """JSON lines for the events of one meter."""
    n = frame.height
    if meter.aggregation == "unique_count":
        raw = [json.dumps(f"u{v}") for v in rng.integers(0, 200, n)]
    elif meter.aggregation == "sum":
        # Whole and decimal values, as JSON numbers and as decimal strings.
        ints = rng.integers(1, 5000, n)
        cents = rng.integers(0, 1000, n)
        raw = [f"{i}.{c:03d}" if c % 3 == 0 else (f'"{i}"' if c % 7 == 0 else str(i)) for i, c in zip(ints, cents)]
    else:
        raw = [str(v) for v in rng.integers(1, 1000, n)]
    values = pl.Series("v", raw, dtype=pl.String)
    fields: dict[str, list[pl.Expr]] = {}
    if meter.value_path:
        top, expr = _nested(meter.value_path, pl.lit(values))
        fields.setdefault(top, []).append(expr)
    for flt in meter.filters:
        top, expr = _nested(flt.field_path, pl.lit(json.dumps(flt.allowed_values[0])))
        fields.setdefault(top, []).append(expr)
    extra = []
    for top, exprs in fields.items():
        merged = exprs[0] if len(exprs) == 1 else _merge_objects(exprs)
        extra.append(pl.concat_str([pl.lit(f",{json.dumps(top)}:"), merged]))
    if "metadata" not in fields:
        extra.append(pl.lit(',"metadata":{}'))
    line = pl.concat_str(
        [
            pl.lit('{"event_id":"'),
            pl.col("event_id"),
            pl.lit('","timestamp":'),
            pl.col("ts").cast(pl.String),
            pl.lit(',"customer_id":"'),
            pl.col("customer_id"),
            pl.lit(f'","action":{json.dumps(meter.action)}'),
            *extra,
            pl.lit("}"),
        ]
    )
    return frame.select(line.alias("line"))["line"]


def _merge_objects(exprs: list[pl.Expr]) -> pl.Expr:
    """Merge JSON object texts {a}{b} into {a,b} (each fragment built by _nested)."""
    inner = [e.str.strip_prefix("{").str.strip_suffix("}") for e in exprs]
    return pl.concat_str([pl.lit("{"), pl.concat_str(inner, separator=","), pl.lit("}")])


def generate_month(
    contract: Contract,
    customers: list[str],
    out_dir: Path,
    n_events: int,
    seed: int = 7,
    first_id: int = 0,
    start_day: int = 0,
    days: int = DAYS,
) -> GeneratedDay:
    """n_events over `days` days from MONTH_START + start_day, one file per landing day."""
    rng = np.random.default_rng(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    meters = list(contract.meters)
    ids = np.arange(first_id, first_id + n_events)
    meter_idx = rng.integers(0, len(meters), n_events)
    day = rng.integers(start_day, start_day + days, n_events)
    ts = (MONTH_START.timestamp() + day * 86400 + rng.integers(0, 86400, n_events)).astype(np.int64)
    late = rng.random(n_events) < 0.05
    landing_day = np.where(late, day + rng.integers(1, 10, n_events), day)
    frame = pl.DataFrame(
        {
            "event_id": [f"evt_{i:09d}" for i in ids],
            "ts": ts,
            "customer_id": np.array(customers)[rng.integers(0, len(customers), n_events)],
            "meter": meter_idx,
            "landing_day": landing_day,
        }
    )
    parts = []
    for i, meter in enumerate(meters):
        sub = frame.filter(pl.col("meter") == i)
        parts.append(sub.select("landing_day", "event_id").with_columns(line=_meter_lines(meter, sub, rng)))
    lines = pl.concat(parts)
    # 2% re-sent: the same line again, landing a day later.
    dups = lines.sample(fraction=0.02, seed=seed).with_columns(pl.col("landing_day") + 1)
    bad = pl.DataFrame(
        {
            "landing_day": [start_day] * 3,
            "event_id": ["", "", ""],
            "line": [
                '{"event_id": "broken',
                '{"event_id":"evt_bad_customer","timestamp":1790000000,"customer_id":"cus_nobody","action":"x","metadata":{}}',
                "not json",
            ],
        },
        schema=lines.schema,
    )
    everything = pl.concat([lines, dups, bad])
    files = []
    for (landing,), chunk in everything.sort("landing_day", "event_id").group_by(["landing_day"], maintain_order=True):
        path = out_dir / f"usage-{(MONTH_START + timedelta(days=int(landing))).date()}-{seed}.jsonl"
        path.write_text("\n".join(chunk["line"].to_list()) + "\n")
        files.append(path)
    return GeneratedDay(files=files, events=n_events, duplicates=dups.height, bad_lines=bad.height)


@dataclass(frozen=True)
class NewFile:
    """A file of new usage landed after the month: what a run with little new sees."""

    path: Path
    lines: int  # every line written, the bad ones included
    events: int  # new events (their re-sent copies and the month's re-sent lines apart)
    late: int  # of them, timestamped days before the file's own day
    duplicates: int  # lines re-sending an event: within the file, and of the month already landed


def write_new_file(
    contract: Contract, customers: list[str], raw_dir: Path, n_events: int, first_id: int, month_file: Path
) -> NewFile:
    """One new file (written under a temporary name and renamed into place) with `n_events` events of the day after
    the month's, a tenth of them late (timestamped up to 9 days earlier), a few re-sent within the file, a few
    re-sending lines of `month_file` (landed before) and the generator's few bad lines."""
    scratch = raw_dir.parent / f".{raw_dir.name}-parts"
    late = max(1, n_events // 10)
    parts = [
        generate_month(contract, customers, scratch / "day", n_events - late, 11, first_id, DAYS, 1),
        generate_month(contract, customers, scratch / "late", late, 13, first_id + n_events - late, DAYS - 9, 9),
    ]
    lines = [line for part in parts for path in part.files for line in path.read_text().splitlines()]
    resent = month_file.read_text().splitlines()[: max(1, n_events // 500)]
    path = raw_dir / f"usage-{(MONTH_START + timedelta(days=DAYS)).date()}-new.jsonl"
    raw_dir.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text("\n".join(lines + resent) + "\n")
    partial.rename(path)
    for part in parts:
        for written in part.files:
            written.unlink()
    for folder in (scratch / "day", scratch / "late", scratch):
        folder.rmdir()
    return NewFile(
        path=path,
        lines=len(lines) + len(resent),
        events=n_events,
        late=late,
        duplicates=sum(part.duplicates for part in parts) + len(resent),
    )

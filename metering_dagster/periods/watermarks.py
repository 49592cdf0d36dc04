"""Per-source completeness watermarks.

A source is a top-level folder of the raw folder (`.` for files at its root). It may carry a file
`WATERMARK` holding one RFC 3339 time with an offset: its logs are complete up to that time. A source
feeds the customers that have events in its files. A source without the file is not tracked.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

WATERMARK_FILE = "WATERMARK"
ROOT_SOURCE = "."


@dataclass(frozen=True)
class Watermark:
    source: str
    complete_until: datetime | None  # None: the file does not hold a valid time
    problem: str | None = None


def source_of(source_file: str) -> str:
    """The source (top-level folder) of a landed file's relative path."""
    return source_file.split("/", 1)[0] if "/" in source_file else ROOT_SOURCE


def read_watermarks(raw_dir: Path) -> dict[str, Watermark]:
    out: dict[str, Watermark] = {}
    candidates = [(ROOT_SOURCE, raw_dir / WATERMARK_FILE)]
    if raw_dir.is_dir():
        candidates += [(d.name, d / WATERMARK_FILE) for d in sorted(raw_dir.iterdir()) if d.is_dir()]
    for source, path in candidates:
        if not path.is_file():
            continue
        text = path.read_text().strip()
        try:
            at = datetime.fromisoformat(text.replace("Z", "+00:00"))
            if at.tzinfo is None:
                raise ValueError("no offset")
            out[source] = Watermark(source, at.astimezone(UTC))
        except ValueError:
            out[source] = Watermark(source, None, f"{path}: {text!r} is not an RFC 3339 time with an offset")
    return out


def customer_sources(con: duckdb.DuckDBPyConnection) -> dict[str, set[str]]:
    """customer -> the sources whose files hold events of that customer."""
    rows = con.execute(
        "SELECT DISTINCT customer_id, source_file FROM intermediate.int_usage_events_deduplicated"
    ).fetchall()
    out: dict[str, set[str]] = {}
    for customer, source_file in rows:
        out.setdefault(customer, set()).add(source_of(source_file))
    return out


def incomplete_sources(
    customer: str, period_end: datetime, watermarks: dict[str, Watermark], feeds: dict[str, set[str]]
) -> list[str]:
    """Why the customer's period is not complete yet: each tracked source feeding it that has not passed its end."""
    reasons = []
    for source in sorted(feeds.get(customer, set())):
        mark = watermarks.get(source)
        if mark is None:
            continue
        if mark.complete_until is None:
            reasons.append(mark.problem or f"source {source}: unreadable watermark")
        elif mark.complete_until < period_end:
            reasons.append(
                f"source {source} complete only until {mark.complete_until.isoformat()}, "
                f"before the period end {period_end.isoformat()}"
            )
    return reasons

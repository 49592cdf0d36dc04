"""Land new raw usage files into `raw.usage_lines` with a content manifest in `raw.landed_files`."""

from __future__ import annotations

import gzip
import hashlib
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import polars as pl

from ..warehouse import ensure_source_tables
from .parse import exact_json, fields_select_sql, strict_json_ok

PATTERNS = ("*.jsonl", "*.jsonl.gz")


@dataclass(frozen=True)
class LandedFile:
    source_file: str  # relative to raw_dir, posix
    content_sha256: str
    size_bytes: int
    lines_read: int  # physical lines in the file
    lines_landed: int  # non-blank lines written to raw.usage_lines


@dataclass(frozen=True)
class ChangedFile:
    """A file already landed whose content changed since: reported, never re-read."""

    source_file: str
    landed_sha256: str
    current_sha256: str


@dataclass(frozen=True)
class FailedFile:
    source_file: str
    error: str


@dataclass(frozen=True)
class LandingResult:
    landing_run_id: int
    landed_at: datetime
    landed: tuple[LandedFile, ...] = ()
    skipped: tuple[str, ...] = ()  # already landed, unchanged
    changed: tuple[ChangedFile, ...] = ()
    failed: tuple[FailedFile, ...] = field(default_factory=tuple)

    @property
    def lines_read(self) -> int:
        return sum(f.lines_read for f in self.landed)

    @property
    def lines_landed(self) -> int:
        return sum(f.lines_landed for f in self.landed)


def find_raw_files(raw_dir: Path) -> list[Path]:
    """Every *.jsonl / *.jsonl.gz under raw_dir, recursively, in path order."""
    found = {p for pattern in PATTERNS for p in raw_dir.rglob(pattern) if p.is_file()}
    return sorted(found, key=lambda p: p.relative_to(raw_dir).as_posix())


def read_lines(content: bytes, gzipped: bool) -> tuple[pl.DataFrame, int]:
    """(line_number, raw_line) of the non-blank lines, and the number of physical lines."""
    if gzipped:
        content = gzip.decompress(content)
    text = content.decode("utf-8", errors="replace").removeprefix("\ufeff")
    lines = (
        pl.DataFrame({"raw_line": [text]})
        .select(pl.col("raw_line").str.split("\n"))
        .explode("raw_line")
        .with_row_index("line_number", offset=1)
    )
    if text.endswith("\n"):
        lines = lines.head(lines.height - 1)
    physical = lines.height if text else 0
    lines = (
        lines.with_columns(pl.col("line_number").cast(pl.Int64), pl.col("raw_line").str.strip_suffix("\r"))
        .filter(pl.col("raw_line").str.strip_chars() != "")
    )
    return lines, physical


def land_new_files(con: duckdb.DuckDBPyConnection, raw_dir: str | Path, *, now: datetime | None = None) -> LandingResult:
    """Land every not-yet-landed raw file under raw_dir in one landing run (one transaction)."""
    raw_dir = Path(raw_dir)
    landed_at = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    ensure_source_tables(con)
    manifest = dict(con.execute("select source_file, content_sha256 from raw.landed_files").fetchall())
    run_id = con.execute("select coalesce(max(landing_run_id), 0) + 1 from raw.landed_files").fetchone()[0]

    landed, skipped, changed, failed = [], [], [], []
    con.execute("begin transaction")
    try:
        with tempfile.TemporaryDirectory(prefix="landing-") as tmp:
            for path in find_raw_files(raw_dir) if raw_dir.is_dir() else []:
                source_file = path.relative_to(raw_dir).as_posix()
                content = path.read_bytes()
                sha = hashlib.sha256(content).hexdigest()
                if source_file in manifest:
                    if manifest[source_file] == sha:
                        skipped.append(source_file)
                    else:
                        changed.append(ChangedFile(source_file, manifest[source_file], sha))
                    continue
                try:
                    lines, physical = read_lines(content, path.name.endswith(".gz"))
                except (OSError, EOFError, gzip.BadGzipFile) as exc:
                    failed.append(FailedFile(source_file, f"{type(exc).__name__}: {exc}"))
                    continue
                _insert_lines(con, lines, source_file, run_id, landed_at, Path(tmp) / "batch.parquet")
                con.execute(
                    "insert into raw.landed_files values (?, ?, ?, ?, ?, ?)",
                    [source_file, sha, len(content), physical, run_id, landed_at],
                )
                landed.append(LandedFile(source_file, sha, len(content), physical, lines.height))
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    return LandingResult(run_id, landed_at, tuple(landed), tuple(skipped), tuple(changed), tuple(failed))


def _insert_lines(con, lines: pl.DataFrame, source_file: str, run_id: int, landed_at: datetime, parquet: Path) -> None:
    if lines.height == 0:
        return
    lines.select(
        pl.lit(source_file).alias("source_file"),
        "line_number",
        "raw_line",
        exact_json(pl.col("raw_line")).alias("exact_json"),
        strict_json_ok(pl.col("raw_line")).alias("strict_ok"),
    ).write_parquet(parquet, compression="uncompressed")
    con.execute(
        "insert into raw.usage_lines " + fields_select_sql("read_parquet($parquet)"),
        {"landing_run_id": run_id, "landed_at": landed_at, "parquet": str(parquet)},
    )

"""Land new raw usage files into `raw.usage_lines` with a content manifest in `raw.landed_files`.

What is read (the rule for files still being written; README "What happens when…"):

- Only `*.jsonl` / `*.jsonl.gz` names are read: a writer writes under another name (`.part`, `.tmp`)
  and renames, which is atomic.
- A file is read only when it is complete: a `.jsonl` ends with a newline, a `.jsonl.gz` holds a
  whole gzip stream, and its size and modification time did not change while it was read. A
  file that does not look complete (no final newline, a gzip stream cut short, an empty file) is
  left for a later run (`incomplete`) until it has not changed for
  `METERING_LANDING_SETTLE_SECONDS` (default 60); then it is read as it is.
- Landed once: the manifest keeps each file's sha256; the same file again is skipped. A landed
  file that grew, its landed bytes an unchanged prefix ending at a line end (a `.jsonl.gz` at the
  end of a gzip member), lands only its new lines, their line numbers continuing (`appended`). A
  file whose landed part changed is refused (`changed`) and never re-read: one
  `file_changed_after_landing` row per refused content names it in quarantine, and the landing
  check `no_file_changed_after_landing` fails on every run that finds it changed. A landed
  file whose size and modification time are still those recorded at landing is skipped without
  being read again, so a run with nothing new does not re-read all history (see `_unchanged`).

Every line read gets one row in `raw.usage_lines` except blank lines (counted in
`raw.landed_files.lines_blank`). A line that cannot be an event is landed with a
`landing_problem`, which dbt turns into the quarantine reason: `invalid_utf8` (the raw text is
kept with the bad bytes escaped as `\\xNN`, never replaced), `line_too_long` (over
`MAX_LINE_BYTES`; the first KiB is kept), `corrupt_gzip` (one row for the unreadable rest of the
file, after the lines read before the damage), `empty_file` (one row for a file with no line),
`invalid_file_name` (one row for a file whose name is not valid UTF-8: the warehouse cannot hold
the name, so the file is recorded under the name with its bad bytes as `\\xNN` and its lines are
not read; renamed, it lands as a new file).
So for every file: line_count = lines_blank + its rows in raw.usage_lines (asset check
`every_line_accounted_for`), and downstream every row is either a valid event or quarantined.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import queue
import threading
import time
import zlib
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl

from ..display import count
from ..progress import report
from ..settings import landing_settle_seconds
from ..warehouse import ArrowStream, ensure_source_tables
from .parse import exact_json, fields_select_sql, may_be_lenient, strict_json_ok

PATTERNS = ("*.jsonl", "*.jsonl.gz")
MAX_LINE_BYTES = 1024 * 1024  # a longer line is quarantined as line_too_long
KEPT_PREFIX_CHARS = 1024
DEFAULT_SETTLE_SECONDS = 60.0


def settle_seconds() -> float:
    return landing_settle_seconds(DEFAULT_SETTLE_SECONDS)


@dataclass(frozen=True)
class LandedFile:
    source_file: str  # relative to raw_dir, posix
    content_sha256: str
    size_bytes: int
    lines_read: int  # physical lines in the file (+1 for a file-level problem: empty, corrupt rest)
    lines_landed: int  # rows written to raw.usage_lines without a landing problem
    lines_quarantined: int = 0  # rows written with a landing_problem
    lines_blank: int = 0  # blank lines: read, not landed
    mtime_ns: int | None = None  # the file's modification time when it was read
    first_line_number: int = 1  # > 1: the new lines of a landed file that grew

    @property
    def appended(self) -> bool:
        return self.first_line_number > 1


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
class IncompleteFile:
    """Looks like it is still being written: left for a later run."""

    source_file: str
    reason: str


@dataclass(frozen=True)
class LandingResult:
    landing_run_id: int
    landed_at: datetime
    landed: tuple[LandedFile, ...] = ()
    skipped: tuple[str, ...] = ()  # already landed, unchanged
    changed: tuple[ChangedFile, ...] = ()
    failed: tuple[FailedFile, ...] = field(default_factory=tuple)
    incomplete: tuple[IncompleteFile, ...] = ()

    @property
    def lines_read(self) -> int:
        return sum(f.lines_read for f in self.landed)

    @property
    def lines_landed(self) -> int:
        return sum(f.lines_landed for f in self.landed)

    @property
    def lines_quarantined(self) -> int:
        return sum(f.lines_quarantined for f in self.landed)

    @property
    def lines_blank(self) -> int:
        return sum(f.lines_blank for f in self.landed)


class RawFolderMissing(Exception):
    """The raw folder does not exist: landing stops rather than report that nothing arrived."""


def find_raw_files(raw_dir: Path) -> list[Path]:
    """Every *.jsonl / *.jsonl.gz under raw_dir, recursively, in path order."""
    if not raw_dir.is_dir():
        what = "is not a folder" if raw_dir.exists() else "does not exist"
        raise RawFolderMissing(f"the raw folder {raw_dir} {what} (METERING_RAW_DIR); nothing was landed")
    found = {p for pattern in PATTERNS for p in raw_dir.rglob(pattern) if p.is_file()}
    return sorted(found, key=lambda p: p.relative_to(raw_dir).as_posix())


def list_log_files(raw_dir: Path) -> dict[str, list[int]]:
    """Every log file under raw_dir (relative path -> [size, mtime_ns]), in path order; {} without the folder.

    What a sensor looks at to decide a run is due: names, sizes and times only, never the warehouse (a run may
    hold it). Landing itself decides, by content, what is new."""
    try:
        paths = find_raw_files(raw_dir)
    except RawFolderMissing:
        return {}
    found = {}
    for path in paths:
        stat = path.stat()
        found[path.relative_to(raw_dir).as_posix()] = [stat.st_size, stat.st_mtime_ns]
    return found


def new_or_changed(current: dict[str, list[int]], seen: dict[str, list[int]]) -> list[str]:
    """The files of `current` whose size or time differs from `seen` (or that `seen` lacks)."""
    return [name for name, sig in current.items() if seen.get(name) != sig]


class Incomplete(Exception):
    pass


def _gunzip(content: bytes, settled: bool) -> tuple[bytes, str | None]:
    """(decompressed bytes, problem): the readable prefix and what was wrong with the rest."""
    try:
        return gzip.decompress(content), None
    except EOFError as exc:
        if not settled:
            raise Incomplete(f"gzip stream cut short ({exc}); waiting for the writer") from exc
        problem = f"{exc}"
    except (OSError, gzip.BadGzipFile, zlib.error) as exc:
        problem = f"{type(exc).__name__}: {exc}"
    d = zlib.decompressobj(wbits=31)
    out = []
    for i in range(0, len(content), 65536):
        try:
            out.append(d.decompress(content[i : i + 65536]))
        except zlib.error:
            break
    return b"".join(out), problem


def _frame(raw_lines: list[str], problems: list[str | None], start: int = 1) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "line_number": list(range(start, start + len(raw_lines))),
            "raw_line": raw_lines,
            "landing_problem": problems,
        },
        schema={"line_number": pl.Int64, "raw_line": pl.String, "landing_problem": pl.String},
    )


def _split_checked(data: bytes) -> tuple[pl.DataFrame, int]:
    """Lines with their landing problem (slow path: the bytes are not all valid UTF-8, or a line is too long)."""
    parts = data.split(b"\n")
    if data.endswith(b"\n"):
        parts.pop()
    raw, problems = [], []
    for part in parts:
        part = part.removesuffix(b"\r")
        if len(part) > MAX_LINE_BYTES:
            head = part[:KEPT_PREFIX_CHARS].decode("utf-8", "backslashreplace")
            raw.append(f"{head}… [line of {len(part)} bytes, over the {MAX_LINE_BYTES}-byte limit; cut here]")
            problems.append("line_too_long")
            continue
        try:
            raw.append(part.decode("utf-8"))
            problems.append(None)
        except UnicodeDecodeError as exc:
            raw.append(part.decode("utf-8", "backslashreplace"))
            problems.append("invalid_utf8")
            del exc
    return _frame(raw, problems), len(parts)


SPLIT_BLOCK_BYTES = 8 * 1024 * 1024


def _split_lines(content: bytes) -> pl.DataFrame:
    """The lines of UTF-8 `content` (UnicodeDecodeError if it is not), split a block of about
    SPLIT_BLOCK_BYTES at a time: splitting a whole file at once holds about seven times its size
    (an 87 MB file took 630 MB). A block ends at a newline, which is never inside a UTF-8 character."""
    blocks, start = [], 0
    while start < len(content):
        newline = content.find(b"\n", start + SPLIT_BLOCK_BYTES - 1)
        end = len(content) if newline < 0 else newline + 1
        block = pl.Series("raw_line", [content[start:end].decode("utf-8")], dtype=pl.String).str.split("\n").explode()
        # a block that ends with its newline splits into one more, empty, piece
        blocks.append(block.head(block.len() - 1) if content[end - 1 : end] == b"\n" else block)
        start = end
    return (
        pl.concat(blocks, rechunk=False).to_frame() if blocks else pl.Series("raw_line", [], dtype=pl.String).to_frame()
    )


def read_lines(
    content: bytes, gzipped: bool, settled: bool = True, whole_file: bool = True
) -> tuple[pl.DataFrame, int, int]:
    """(line_number, raw_line, landing_problem) of the non-blank lines, lines read, blank lines.

    `whole_file=False` for the bytes appended to a landed file: no byte order mark to drop, and no
    `empty_file` row. Raises `Incomplete` for a file that does not look finished yet (see module doc).
    """
    problem = None
    if gzipped:
        content, problem = _gunzip(content, settled)
        if problem is not None:  # keep whole lines of the readable prefix; the rest is one unit
            content = content[: content.rfind(b"\n") + 1]
    elif content and not content.endswith(b"\n") and not settled:
        raise Incomplete("no newline at the end; waiting for the writer")
    if not gzipped and not content and not settled:
        raise Incomplete("empty; waiting for the writer")
    if whole_file:
        content = content.removeprefix(b"\xef\xbb\xbf")
    try:
        lines = _split_lines(content)
        if b"\r" in content:
            lines = lines.with_columns(pl.col("raw_line").str.strip_suffix("\r"))
        if lines.height and lines.select(pl.col("raw_line").str.len_bytes().max()).item() > MAX_LINE_BYTES:
            raise UnicodeError("a line is too long")
        physical = lines.height
        lines = lines.select(
            pl.int_range(1, physical + 1, dtype=pl.Int64).alias("line_number"),
            "raw_line",
            pl.lit(None, dtype=pl.String).alias("landing_problem"),
        )
    except UnicodeError:
        lines, physical = _split_checked(content)
    extra = []
    if problem is not None:
        extra.append((f"[unreadable rest of the gzip file: {problem}]", "corrupt_gzip"))
    elif physical == 0 and whole_file:
        extra.append(("[empty file: no line]", "empty_file"))
    if extra:
        lines = pl.concat([lines, _frame([e[0] for e in extra], [e[1] for e in extra], start=physical + 1)])
        physical += len(extra)
    # `^\s*$` is strip_chars() == "" (both Unicode whitespace) without building the stripped strings.
    blank = lines.select(pl.col("raw_line").str.contains(r"^\s*$") & pl.col("landing_problem").is_null()).to_series()
    n_blank = blank.sum()
    if n_blank:
        lines = lines.filter(~blank)
    return lines, physical, n_blank


@dataclass(frozen=True)
class _Rows:
    """Lines of one or more files, ready to insert into raw.usage_lines, and the files they complete.

    One item per chunk: with the files as items of their own, the read-ahead thread would wait for
    the main thread to take each of them, i.e. to finish inserting the chunk, before reading on.
    """

    batch: pl.DataFrame | None
    landed: tuple[LandedFile, ...] = ()


# A file modified this close to its landing may be modified again within the same file-system timestamp tick
# (git's "racily clean" entries): its size and time prove nothing, so it is hashed on every run.
RACY_SECONDS = 2


@dataclass(frozen=True)
class _Landed:
    """What the manifest recorded about a landed file."""

    content_sha256: str
    size_bytes: int
    mtime_ns: int | None
    landed_at: datetime
    line_count: int


def _unchanged(landed: _Landed, stat: os.stat_result) -> bool:
    """True when the file still has the size and modification time it had when landed, and that time was
    well before the landing: then it is taken as unchanged without reading and hashing it again."""
    return (
        landed.mtime_ns is not None
        and (stat.st_size, stat.st_mtime_ns) == (landed.size_bytes, landed.mtime_ns)
        and landed.mtime_ns + RACY_SECONDS * 10**9 < landed.landed_at.timestamp() * 10**9
    )


def escaped_file_name(name: str) -> str | None:
    """`name` with the bytes that are not UTF-8 written `\\xNN`, or None when the name is valid UTF-8."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # Python keeps undecodable bytes of a file name as lone surrogates
        return os.fsencode(name).decode("utf-8", "backslashreplace")
    return None


def _read_file(path: Path, raw_dir: Path, manifest: dict[str, _Landed], settle: float):
    """(lines, LandedFile) for a file to land, else its outcome: skipped name, Changed/Failed/IncompleteFile."""
    source_file = path.relative_to(raw_dir).as_posix()
    bad_name = escaped_file_name(source_file)
    source_file = bad_name or source_file
    try:
        before = path.stat()
        if source_file in manifest and _unchanged(manifest[source_file], before):
            return source_file
        content = path.read_bytes()
        after = path.stat()
    except OSError as exc:
        return FailedFile(source_file, f"{type(exc).__name__}: {exc}")
    sha = hashlib.sha256(content).hexdigest()
    gzipped = path.name.endswith(".gz")
    landed = manifest.get(source_file)
    first_line = 1
    if landed is not None:
        if landed.content_sha256 == sha:
            return source_file
        new_part = None if bad_name else _appended_part(content, landed, gzipped)
        if new_part is None:
            return ChangedFile(source_file, landed.content_sha256, sha)
        first_line = landed.line_count + 1
    if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns) or len(content) != after.st_size:
        return IncompleteFile(source_file, "changed while it was read; waiting for the writer")
    if bad_name is not None:
        lines = _frame(
            [f"[file name is not valid UTF-8: {bad_name}; rename the file to land its lines]"], ["invalid_file_name"]
        )
        return lines, LandedFile(source_file, sha, len(content), 1, 0, 1, 0, after.st_mtime_ns)
    settled = time.time() - after.st_mtime >= settle
    try:
        if first_line > 1:
            lines, physical, blank = read_lines(content[landed.size_bytes :], gzipped, settled, whole_file=False)
            lines = lines.with_columns(pl.col("line_number") + (first_line - 1))
        else:
            lines, physical, blank = read_lines(content, gzipped, settled)
    except Incomplete as exc:
        return IncompleteFile(source_file, str(exc))
    quarantined = lines.filter(pl.col("landing_problem").is_not_null()).height
    return lines, LandedFile(
        source_file,
        sha,
        len(content),
        physical,
        lines.height - quarantined,
        quarantined,
        blank,
        after.st_mtime_ns,
        first_line,
    )


def _appended_part(content: bytes, landed: _Landed, gzipped: bool) -> bytes | None:
    """The bytes added after the landed part, when the landed part is an unchanged prefix of `content` that
    ends where a line ends; None when the file changed in any other way (refused)."""
    size = landed.size_bytes
    if len(content) <= size or hashlib.sha256(content[:size]).hexdigest() != landed.content_sha256:
        return None
    if gzipped:  # the landed part must be whole gzip members whose text ends with a line
        try:
            text = gzip.decompress(content[:size])
        except (EOFError, OSError, zlib.error):
            return None
    else:
        text = content[:size]
    return content[size:] if text.endswith(b"\n") else None


def _read_files(paths: list[Path], raw_dir: Path, manifest: dict[str, _Landed], settle: float):
    """_Rows of about CHUNK_ROWS lines (across small files, a big file in parts), each file's LandedFile
    with or after its last rows; or a file's other outcome."""
    parts, done, size = [], [], 0
    for path in paths:
        read = _read_file(path, raw_dir, manifest, settle)
        if not isinstance(read, tuple):
            yield read
            continue
        lines, landed = read
        del read
        for start in range(0, lines.height, CHUNK_ROWS):
            part = lines.slice(start, CHUNK_ROWS)
            parts.append(part.with_columns(pl.lit(landed.source_file).alias("source_file")))
            size += part.height
            if size >= CHUNK_ROWS:
                yield _Rows(_landing_batch(pl.concat(parts)), tuple(done))
                parts, done, size = [], [], 0
        del lines
        done.append(landed)
    if parts or done:
        yield _Rows(_landing_batch(pl.concat(parts)) if parts else None, tuple(done))


def _ahead(items, depth: int = 1):
    """Iterate `items` in a thread, at most `depth` items ahead of the caller.

    Reading files and the polars rewriting (which releases the GIL) then overlap DuckDB inserting
    the previous chunk, and only a few chunks are in memory at once.
    """
    done = object()
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry) -> bool:
        while not stop.is_set():
            try:
                ready.put(entry, timeout=0.1)
                return True
            except queue.Full:
                pass
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
            put((done, None))
        except BaseException as exc:  # handed to the caller
            put((done, exc))

    thread = threading.Thread(target=produce, name="landing-read", daemon=True)
    thread.start()
    try:
        while True:
            item, error = ready.get()
            if error is not None:
                raise error
            if item is done:
                return
            yield item
    finally:
        stop.set()
        thread.join()


def land_new_files(
    con: duckdb.DuckDBPyConnection, raw_dir: str | Path, *, now: datetime | None = None
) -> LandingResult:
    """Land every not-yet-landed raw file under raw_dir in one landing run (one transaction)."""
    raw_dir = Path(raw_dir)
    landed_at = (now or datetime.now(UTC)).astimezone(UTC)
    ensure_source_tables(con)
    manifest = {
        row[0]: _Landed(*row[1:])
        for row in con.execute(
            "select source_file, content_sha256, size_bytes, file_mtime_ns, landed_at, line_count from raw.landed_files"
        ).fetchall()
    }
    run_id = con.execute("select coalesce(max(landing_run_id), 0) + 1 from raw.landed_files").fetchone()[0]
    paths = find_raw_files(raw_dir)

    landed, skipped, changed, failed, incomplete = [], [], [], [], []
    outcomes = {str: skipped, ChangedFile: changed, FailedFile: failed, IncompleteFile: incomplete}
    con.execute("begin transaction")
    try:
        with closing(_ahead(_read_files(paths, raw_dir, manifest, settle_seconds()))) as reads:
            for read in reads:
                if isinstance(read, _Rows):
                    if read.batch is not None:
                        _insert_batch(con, read.batch, run_id, landed_at)
                    for file in read.landed:
                        _record_landed(con, file, run_id, landed_at)
                        landed.append(file)
                else:
                    outcomes[type(read)].append(read)
                _report_landing(landed, skipped, len(paths))
            for file in changed:
                _quarantine_changed(con, file, manifest[file.source_file], run_id, landed_at)
        commit_landing(con)
    except BaseException:
        con.execute("rollback")
        raise
    return LandingResult(
        run_id, landed_at, tuple(landed), tuple(skipped), tuple(changed), tuple(failed), tuple(incomplete)
    )


def commit_landing(con: duckdb.DuckDBPyConnection) -> None:
    """The end of a landing run: every file it read becomes visible at once, or (uncommitted) none does."""
    con.execute("commit")


def _report_landing(landed: list[LandedFile], skipped: list, found: int) -> None:
    lines = sum(f.lines_read - f.lines_blank for f in landed)
    report(
        f"landing: {count(len(landed), 'new file')} read of {found} found ({len(skipped)} landed before), "
        f"{count(lines, 'line')}"
    )


def _record_landed(con: duckdb.DuckDBPyConnection, file: LandedFile, run_id: int, landed_at: datetime) -> None:
    """The manifest row of a new file; for a file that grew, its row now describes the whole file, the run
    that landed its last lines, and every line read of it."""
    if file.appended:
        con.execute(
            """update raw.landed_files set content_sha256 = ?, size_bytes = ?, line_count = line_count + ?,
                   lines_blank = lines_blank + ?, landing_run_id = ?, landed_at = ?, file_mtime_ns = ?
               where source_file = ?""",
            [
                file.content_sha256,
                file.size_bytes,
                file.lines_read,
                file.lines_blank,
                run_id,
                landed_at,
                file.mtime_ns,
                file.source_file,
            ],
        )
        return
    con.execute(
        "insert into raw.landed_files by name (select ? as source_file, ? as content_sha256, "
        "? as size_bytes, ? as line_count, ? as landing_run_id, ? as landed_at, ? as lines_blank, "
        "? as file_mtime_ns)",
        [
            file.source_file,
            file.content_sha256,
            file.size_bytes,
            file.lines_read,
            run_id,
            landed_at,
            file.lines_blank,
            file.mtime_ns,
        ],
    )


def _quarantine_changed(
    con: duckdb.DuckDBPyConnection, file: ChangedFile, landed: _Landed, run_id: int, landed_at: datetime
) -> None:
    """One `file_changed_after_landing` row per refused content of a file, after its landed lines.

    The manifest keeps describing the landed part (so the file restored to it is simply skipped again)
    and counts the row as a line read, like the file-level rows of other landing problems.
    """
    marker = f"now sha256 {file.current_sha256}"
    if con.execute(
        """select count(*) from raw.usage_lines
           where source_file = ? and landing_problem = 'file_changed_after_landing' and contains(raw_line, ?)""",
        [file.source_file, marker],
    ).fetchone()[0]:
        return
    text = (
        f"[file changed after landing: its first {landed.size_bytes} bytes are no longer the ones landed "
        f"(sha256 {landed.content_sha256}), {marker}; nothing of it is read again. Put the landed content back "
        "(lines may then be appended), or publish the new lines under a new file name]"
    )
    row = _frame([text], ["file_changed_after_landing"], start=landed.line_count + 1)
    _insert_batch(
        con, _landing_batch(row.with_columns(pl.lit(file.source_file).alias("source_file"))), run_id, landed_at
    )
    con.execute(
        "update raw.landed_files set line_count = line_count + 1, landing_run_id = ? where source_file = ?",
        [run_id, file.source_file],
    )


# A batch for each of DuckDB's 2 threads: each inserts (and compresses) long runs of rows; 16,384-row
# batches cost about 15% more CPU. The chunk bounds landing's memory, since its lines are held about
# three times at once (read ahead, rewritten, inserted): twice this size cost ~200 MB more.
BATCH_ROWS = 65_536
CHUNK_ROWS = 2 * BATCH_ROWS  # lines per insert: fewer, fuller inserts for small files, bounded memory for big ones


def _strict_ok(lines: pl.DataFrame) -> pl.Series:
    """strict_json_ok for the lines that may need it, True for the others; False for a landing problem."""
    ok = lines.get_column("landing_problem").is_null()
    check = (
        lines.select(may_be_lenient(pl.col("raw_line")) & pl.col("landing_problem").is_null()).to_series().arg_true()
    )
    if len(check):
        ok = ok.scatter(check, lines[check].select(strict_json_ok(pl.col("raw_line"))).to_series())
    return ok.alias("strict_ok")


def _landing_batch(lines: pl.DataFrame) -> pl.DataFrame:
    """The polars half of landing: (source_file, line_number, raw_line, landing_problem, exact_json, strict_ok),
    in Arrow batches of BATCH_ROWS."""
    batch = lines.select(
        "source_file",
        "line_number",
        "raw_line",
        "landing_problem",
        exact_json(pl.col("raw_line")).alias("exact_json"),
        _strict_ok(lines),
    )
    return pl.concat([batch.slice(i, BATCH_ROWS) for i in range(0, batch.height, BATCH_ROWS)] or [batch], rechunk=False)


def _insert_batch(con, batch: pl.DataFrame, run_id: int, landed_at: datetime) -> None:
    """The DuckDB half: parse the fields and insert, scanning the frame in place."""
    if batch.height == 0:
        return
    # Found by DuckDB's replacement scan (a local of the calling frame). Not con.register: inside a
    # transaction that keeps every registered frame alive until commit, i.e. all the files' lines.
    landing_batch = ArrowStream(batch)  # noqa: F841
    con.execute(
        "insert into raw.usage_lines by name " + fields_select_sql("landing_batch"),
        {"landing_run_id": run_id, "landed_at": landed_at},
    )


def _insert_lines(
    con, lines: pl.DataFrame, source_file: str, run_id: int, landed_at: datetime, _parquet: Path | None = None
) -> None:
    """Insert the lines of one file (`_parquet` is no longer used; kept for existing callers)."""
    batch = _landing_batch(lines.with_columns(pl.lit(source_file, dtype=pl.String).alias("source_file")))
    _insert_batch(con, batch, run_id, landed_at)

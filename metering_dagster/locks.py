"""Two runs never both write the warehouse or both upload to Stripe.

Three layers, from outside in:

1. `run_lock`: `metering run` takes an exclusive lock on `$METERING_STATE_DIR/metering.lock` (flock)
   for the whole run. A second run says who holds it and waits up to `METERING_LOCK_WAIT_SECONDS`
   (default 0: it stops at once), then stops with the reason. The kernel drops the lock when
   its process dies, so a killed run never leaves it behind.
2. The Dagster pool `stripe_upload` (limit 1) on the upload steps: runs started from the UI,
   the schedule or the sensor queue for it; the step log says it waits for a pool slot.
3. `upload_lease`: a row in the warehouse (`ops.upload_lease`) taken by the upload itself, the
   last line of defence whatever started the run: if another live process holds it, the upload
   stops and names it; a lease left by a dead process is taken over and the takeover is logged.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from metering_dagster.schema import ensure_lease_table
from metering_dagster.settings import lock_wait_seconds

log = logging.getLogger(__name__)

UPLOAD_POOL = "stripe_upload"
LOCK_FILE = "metering.lock"


class RunLockBusy(Exception):
    """Another metering run holds the state folder."""


class UploadLeaseHeld(Exception):
    """Another live process is uploading to Stripe from this warehouse."""


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        info = {}
    if not info:
        return "another metering run"
    return f"another metering run (pid {info.get('pid')} on {info.get('host')}, started {info.get('started_at')})"


@contextlib.contextmanager
def run_lock(
    state_dir: Path, *, wait_seconds: float | None = None, say: Callable[[str], None] = lambda m: None
) -> Iterator[None]:
    """Hold the state folder for one run (see module doc)."""
    if wait_seconds is None:
        wait_seconds = lock_wait_seconds(0)
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait_seconds
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
            holder = _holder(path)
            if time.monotonic() >= deadline:
                raise RunLockBusy(
                    f"stopped: {holder} holds {path}"
                    + (f" and did not finish within {wait_seconds:g} s" if wait_seconds else "")
                    + "; DuckDB takes one writer and two runs must never both upload. Try again when it has finished"
                    " (or set METERING_LOCK_WAIT_SECONDS to wait)."
                )
            if not told:
                say(f"waiting: {holder} holds {path} (up to {wait_seconds:g} s)")
                told = True
            time.sleep(0.5)
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def upload_lease(con: duckdb.DuckDBPyConnection, holder: str, name: str = UPLOAD_POOL) -> Iterator[None]:
    """Hold the warehouse's upload lease while sending (see module doc)."""
    ensure_lease_table(con)
    me, host = os.getpid(), socket.gethostname()
    row = con.execute("SELECT holder, pid, host, acquired_at FROM ops.upload_lease WHERE name = ?", [name]).fetchone()
    if row is not None:
        other, pid, other_host, since = row
        if other_host == host and pid == me:
            pass
        elif other_host != host or pid_alive(pid):
            raise UploadLeaseHeld(
                f"upload stopped: {other} (pid {pid} on {other_host}) has been uploading from this warehouse since "
                f"{since}; two uploads must never run at once"
            )
        else:
            log.warning(f"took over the upload lease left by {other} (pid {pid}, dead) since {since}")
    con.execute("INSERT OR REPLACE INTO ops.upload_lease VALUES (?, ?, ?, ?, now())", [name, holder, me, host])
    try:
        yield
    finally:
        con.execute("DELETE FROM ops.upload_lease WHERE name = ? AND pid = ? AND host = ?", [name, me, host])

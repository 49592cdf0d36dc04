"""Named points where a test can have the process killed (SIGKILL), to prove crash safety.

Off unless `METERING_CRASHPOINT` is set, e.g. `METERING_CRASHPOINT=upload:after_send@2` kills the
process (its whole process group, as an OOM killer or `kill -9` of a job would, dbt included) the
second time that point is reached. Points: `landing:before_commit`, `dbt:running` (a timer while
dbt builds; `@N` = after N tenths of a second), `upload:after_ledger_write`, `upload:after_send`
(Stripe took the batch, the ledger does not know yet).
"""

from __future__ import annotations

import os
import signal
import threading

from metering_dagster.settings import crashpoint_spec

_hits: dict[str, int] = {}


def _target() -> tuple[str, int] | None:
    return crashpoint_spec()


def _die() -> None:
    try:
        os.killpg(os.getpgid(0), signal.SIGKILL)
    finally:
        os.kill(os.getpid(), signal.SIGKILL)


def crashpoint(name: str) -> None:
    target = _target()
    if target is None or target[0] != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] >= target[1]:
        _die()


def crash_after_delay(name: str) -> None:
    """For points inside a subprocess we do not control (dbt): kill after `@N` tenths of a second."""
    target = _target()
    if target is None or target[0] != name:
        return
    timer = threading.Timer(target[1] / 10, _die)
    timer.daemon = True
    timer.start()

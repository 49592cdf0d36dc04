"""`metering <command>` that kills itself at a named point, to prove a run survives a crash there.

    python tests/faults/crashing_run.py POINT[@N] run

The kill is SIGKILL of the whole process group (as an OOM killer or `kill -9` of a job would, dbt included), the
N-th time (default 1) the point is reached. Each point is a patch on the product function called there, so the
product code carries no test hooks:

- `landing:before_commit`: every raw line is inserted, the landing transaction is not committed yet;
- `dbt:running`: a timer armed when landing commits, firing N tenths of a second later, while dbt builds;
- `upload:after_ledger_write`: the ledger has its new pending rows, nothing is sent yet;
- `upload:after_send`: Stripe took a batch, the ledger does not know yet;
- `alerts:after_send`: the webhook receiver answered a budget alert, the outbox does not know yet.

Run from the repository root with the run's environment (METERING_STATE_DIR, STRIPE_API_KEY, ...), in a process
group of its own (`start_new_session=True`): the kill takes the whole group.
"""

from __future__ import annotations

import functools
import os
import re
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

POINTS = ("landing:before_commit", "dbt:running", "upload:after_ledger_write", "upload:after_send", "alerts:after_send")


def parse_point(text: str) -> tuple[str, int]:
    match = re.fullmatch(r"([a-z_]+:[a-z_]+)(?:@([1-9][0-9]{0,8}))?", text)
    if not match or match.group(1) not in POINTS:
        raise SystemExit(f"crashing_run: {text!r} is not a crash point: one of {', '.join(POINTS)}, optionally @N")
    return match.group(1), int(match.group(2) or 1)


def die() -> None:
    try:
        os.killpg(os.getpgid(0), signal.SIGKILL)
    finally:
        os.kill(os.getpid(), signal.SIGKILL)


def die_on_hit(nth: int) -> Callable[[], None]:
    """A function that kills the process the nth time it is called."""
    hits = 0

    def hit() -> None:
        nonlocal hits
        hits += 1
        if hits >= nth:
            die()

    return hit


def patch(
    owner: object, name: str, *, before: Callable[[], None] | None = None, after: Callable[[], None] | None = None
) -> None:
    """Replace owner.name with a wrapper that calls `before` ahead of it and `after` once it has returned."""
    original = getattr(owner, name)

    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        if before:
            before()
        result = original(*args, **kwargs)
        if after:
            after()
        return result

    setattr(owner, name, wrapper)


def arm(point: str, n: int) -> None:
    from stripe.v2.billing._meter_event_stream_service import MeterEventStreamService

    from metering_dagster.billing import ledger
    from metering_dagster.budgets import webhooks
    from metering_dagster.landing import land

    if point == "landing:before_commit":
        patch(land, "commit_landing", before=die_on_hit(n))
    elif point == "dbt:running":  # dbt is a subprocess we do not control: a timer, from the end of landing

        def start_timer() -> None:
            timer = threading.Timer(n / 10, die)
            timer.daemon = True  # a run that ends first is not killed
            timer.start()

        patch(land, "commit_landing", after=start_timer)
    elif point == "upload:after_ledger_write":
        patch(ledger, "write_pending", after=die_on_hit(n))
    elif point == "upload:after_send":  # the meter event stream's create returned: Stripe has the batch
        patch(MeterEventStreamService, "create", after=die_on_hit(n))
    elif point == "alerts:after_send":  # one POST of an alert answered, whatever the answer
        patch(webhooks, "_post", after=die_on_hit(n))


def main(argv: list[str]) -> int:
    if not argv:
        raise SystemExit(__doc__)
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's code, as `-m metering_dagster.cli`
    arm(*parse_point(argv[0]))
    from metering_dagster.cli import main as metering

    return metering(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

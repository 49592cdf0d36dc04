"""`metering clock advance --to TIME`: move the shared Stripe test clock (test mode only)."""

from __future__ import annotations

import contextlib
import sys
from datetime import datetime

from metering_dagster.billing.client import open_stripe
from metering_dagster.billing.clock import ClockError, advance_test_clock
from metering_dagster.commands.common import (
    EXIT_FAILED,
    EXIT_OK,
    check_contract,
    prepare_environment,
)
from metering_dagster.commands.runner import say
from metering_dagster.contract import load_contract
from metering_dagster.locks import run_lock
from metering_dagster.progress import ProgressDisplay
from metering_dagster.settings import Settings, lock_wait_seconds
from metering_dagster.warehouse import connect


@contextlib.contextmanager
def holding_state(settings: Settings):
    """Hold the run lock while a command writes the warehouse (`clock advance`).

    DuckDB locks its file against every other process, so such a command waits for a running
    `metering run` (up to METERING_LOCK_WAIT_SECONDS, default 600) instead of making it fail.
    The commands that only read (`explain`, `corrections preview`, `query`) never take it: they
    read the copies each run publishes (serving/reader_copy.py, serving/publish.py).
    """
    wait = lock_wait_seconds(600)
    with run_lock(settings.state_dir, wait_seconds=wait, say=say):
        yield


def advance_clock(settings: Settings, to: datetime) -> int:
    prepare_environment(settings)
    bad = check_contract(settings)
    if bad is not None:
        return bad
    contract = load_contract(settings.contract_path)
    display = ProgressDisplay("metering clock advance")
    with holding_state(settings), open_stripe(settings, contract) as conn, display.listen():
        con = connect(settings.warehouse_path)
        try:
            moved = advance_test_clock(conn.client, con, contract, to)
        except ClockError as error:
            print(f"metering: {error}", file=sys.stderr)
            return EXIT_FAILED
        finally:
            con.close()
            display.close()
    print(moved.summary())
    return EXIT_OK

"""`metering query SQL`: SQL on the analysts' read-only copy of the marts (safe during a run)."""

from __future__ import annotations

import os
import sys

import duckdb

from metering_dagster.commands.common import EXIT_FAILED, EXIT_OK
from metering_dagster.serving.query_output import write_result
from metering_dagster.settings import Settings


def query_marts(settings: Settings, sql: str, fmt: str = "table") -> int:
    """Write the result of `sql` on analytics.duckdb, opened read-only, as a table, CSV or JSON (query_output.py)."""
    if not settings.analytics_path.exists():
        print(f"metering: {settings.analytics_path} does not exist yet: run `metering run` first", file=sys.stderr)
        return EXIT_FAILED
    con = duckdb.connect(str(settings.analytics_path), read_only=True)
    try:
        write_result(con.execute(sql), fmt, sys.stdout)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader stopped reading (`| head`): what it took is what it wanted; nothing more to say.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except duckdb.Error as error:
        print(f"metering: {error}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        con.close()
    return EXIT_OK

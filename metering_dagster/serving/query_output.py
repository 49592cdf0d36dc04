"""`metering query --format table|csv|json`: a query's result written whole, in the form asked for.

Every column is kept. Exact values stay exact: a DECIMAL is written as its text without trailing zeros
(`353882`, `0.1`), never through a float; times are ISO 8601. The table is for a person (a result wider than the
terminal is shown one row at a time, column by column, rather than cut); CSV and JSON for another program (CSV:
a header row, NULL as an empty field; JSON: one array of objects, decimals as strings, NULL as null).
"""

from __future__ import annotations

import csv
import json
import math
import shutil
from collections.abc import Iterator, Sequence
from datetime import date, datetime, time
from decimal import Decimal
from typing import TextIO

import duckdb

from metering_dagster.display import count, quantity

FORMATS = ("table", "csv", "json")
TABLE_MAX_ROWS = 1000  # a person reads no more; CSV and JSON carry every row
_BATCH = 10_000


def text_of(value: object) -> str | None:
    """A value as exact text; None stays None (NULL)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return quantity(value, grouped=False)
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, (list, dict, tuple)):
        return json.dumps(_json_value(value), ensure_ascii=False)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    return str(value)


def _json_value(value: object) -> object:
    """Numbers that JSON holds exactly stay numbers; decimals and times become strings."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)  # JSON has no NaN or infinity
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    return text_of(value)


def _rows(result: duckdb.DuckDBPyConnection) -> Iterator[tuple]:
    while batch := result.fetchmany(_BATCH):
        yield from batch


def write_csv(columns: Sequence[str], rows: Iterator[tuple], out: TextIO) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if (text := text_of(v)) is None else text for v in row])


def write_json(columns: Sequence[str], rows: Iterator[tuple], out: TextIO) -> None:
    out.write("[")
    for i, row in enumerate(rows):
        out.write(",\n " if i else "\n ")
        out.write(json.dumps({c: _json_value(v) for c, v in zip(columns, row)}, ensure_ascii=False))
    out.write("\n]\n")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)


def write_table(columns: Sequence[str], rows: Iterator[tuple], out: TextIO, width: int | None = None) -> None:
    shown, more = [], 0
    numeric = [True] * len(columns)  # right-aligned: every value a number (or NULL)
    for row in rows:
        if len(shown) == TABLE_MAX_ROWS:
            more += 1
            continue
        shown.append(["NULL" if (text := text_of(v)) is None else text for v in row])
        numeric = [n and (v is None or _is_number(v)) for n, v in zip(numeric, row)]
    widths = [max([len(c)] + [len(r[i]) for r in shown]) for i, c in enumerate(columns)]
    width = width or shutil.get_terminal_size((200, 24)).columns
    if sum(widths) + 3 * (len(columns) - 1) <= width or len(columns) == 1:

        def line(values: Sequence[str]) -> str:
            cells = [v.rjust(w) if n else v.ljust(w) for v, w, n in zip(values, widths, numeric)]
            return " | ".join(cells).rstrip() + "\n"

        out.write(" | ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip() + "\n")
        out.write("-+-".join("-" * w for w in widths) + "\n")
        out.writelines(line(r) for r in shown)
    else:  # wider than the terminal: one row at a time, every column on its own line, none dropped
        name_width = max(len(c) for c in columns)
        for n, r in enumerate(shown, 1):
            out.write(f"-[ row {n} ]" + "-" * max(0, name_width - 8) + "\n")
            out.writelines(f"{c.ljust(name_width)} | {v}\n" for c, v in zip(columns, r))
    out.write(
        f"({count(len(shown) + more, 'row')}"
        + (f"; the first {TABLE_MAX_ROWS:,} shown: --format csv or json writes every row" if more else "")
        + ")\n"
    )


def write_result(result: duckdb.DuckDBPyConnection, fmt: str, out: TextIO) -> None:
    """Write the result of an executed query in `fmt` (one of FORMATS)."""
    columns = [d[0] for d in result.description or []]
    writer = {"table": write_table, "csv": write_csv, "json": write_json}[fmt]
    writer(columns, _rows(result), out)

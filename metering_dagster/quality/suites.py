"""Expectation suites built from the metering contract.

The suites run on the rows that the upload will send (the rows of fct_usage_by_period that
differ from the outbox) and on the shadow invoice lines of those customer-periods
(fct_invoice_lines_expected). Rows are fetched as Python objects, so
DECIMAL quantities reach pandas as Decimal, never as float.

What one customer's data gets wrong for a known reason is a hold (`holds.py`): the suite names it and
validates the other customers' rows, so only the held customers are withheld from the upload. A failed
expectation on the rows left blocks everyone (`blocks_everyone`): its cause is not known to be one customer's.
"""

from __future__ import annotations

import importlib
import logging
import sys
import threading
from dataclasses import dataclass, field

import duckdb

from metering_dagster.contract import Contract
from metering_dagster.display import count
from metering_dagster.quality.holds import (
    STRIPE_MAX_DIGITS,
    TO_SEND_SQL,
    Hold,
    invoice_holds,
    significant_digits,
    usage_holds,
)

# GE prints progress bars and usage statistics by default; a pipeline log wants neither (both are turned off
# on each suite's context).
logging.getLogger("great_expectations").setLevel(logging.WARNING)


def import_in_background() -> None:
    """Start importing Great Expectations (~4 s of CPU) on a thread of its own.

    A run's first suite would otherwise pay that import on the run's critical path; started while
    dbt builds in its own process, it overlaps time this process spends waiting. The suites' own
    `import great_expectations` then finds the module loaded, or waits for the thread to finish it.
    """
    if "great_expectations" not in sys.modules:
        threading.Thread(target=_import_quietly, name="import-great-expectations", daemon=True).start()


def _import_quietly() -> None:
    try:
        great_expectations()
    except Exception:  # the suite's own import, on the step's thread, raises it where it is seen
        pass


_IMPORTING = threading.Lock()


def great_expectations():
    """The `great_expectations` module, imported with pyspark hidden from it.

    Great Expectations imports pyspark when it is installed (it is, for the dbt target `spark`), Spark Connect
    included, whose import ends the process with `sys.exit(0)` when `__main__` has no file (`python -c`, as in the
    bench's fresh processes) and pyarrow is missing. The suites validate pandas frames and never use GE's Spark
    support, so GE sees pyspark as not installed: nothing of it loaded, and nothing ended.
    """
    with _IMPORTING:
        if "great_expectations" in sys.modules:
            return sys.modules["great_expectations"]
        hidden = "pyspark" not in sys.modules
        if hidden:
            sys.modules["pyspark"] = None  # an import of it, or of any of its modules, raises ImportError
        try:
            return importlib.import_module("great_expectations")
        finally:
            if hidden and sys.modules.get("pyspark", 0) is None:
                del sys.modules["pyspark"]


@dataclass(frozen=True)
class SuiteOutcome:
    suite: str
    success: bool  # every expectation passed and nothing is held
    rows: int
    failures: list[dict] = field(default_factory=list)  # one per failed expectation
    held: tuple[Hold, ...] = ()  # what is withheld from the upload, by customer, with the reason
    table: str = ""  # the mart whose changed rows the suite checks
    table_rows: int = 0  # every row of it: those not checked now were checked by the run they last changed in

    @property
    def blocks_everyone(self) -> bool:
        """An expectation failed on rows that no hold explains: nothing is uploaded."""
        return bool(self.failures)

    @property
    def failing_customers(self) -> list[str]:
        failed = {c for f in self.failures for c in f["customers"] if c is not None}
        return sorted(failed | {h.customer_id for h in self.held})

    def describe(self) -> str:
        if self.success:
            if not self.rows:
                # An incremental run with nothing new: say so, rather than "0 rows passed".
                return (
                    f"{self.suite}: no row of {self.table} changed since the last upload, nothing new to check"
                    f" ({count(self.table_rows, 'row')} in all, each checked when it last changed)"
                )
            return f"{self.suite}: {count(self.rows, 'changed row')} passed ({count(self.table_rows, 'row')} in {self.table})"
        parts = [
            f"{f['expectation']}({f['column']}): {f['unexpected_count']} rows, customers {', '.join(map(str, f['customers'][:10])) or '-'}"
            for f in self.failures
        ]
        if self.held:
            held = sorted({h.customer_id for h in self.held})
            parts.append(
                f"held from the upload, the other customers uploaded: {', '.join(held[:10])}"
                f"{f' and {len(held) - 10} more' if len(held) > 10 else ''} ("
                + "; ".join(h.describe() for h in self.held[:5])
                + ")"
            )
        return f"{self.suite} failed: " + "; ".join(parts)


def _table_rows(con: duckdb.DuckDBPyConnection, table: str) -> tuple[str, int]:
    return table, con.execute(f"select count(*) from {table}").fetchone()[0]


def _frame(con: duckdb.DuckDBPyConnection, sql: str):
    import pandas as pd

    cursor = con.execute(sql)
    columns = [d[0] for d in cursor.description]
    return pd.DataFrame.from_records(cursor.fetchall(), columns=columns)


def _validate(name: str, frame, expectations: list, held: list[Hold], table: str, table_rows: int) -> SuiteOutcome:
    """The expectations on the rows of the customers not held; the outcome counts every row."""
    gx = great_expectations()

    rows = len(frame)
    frame = frame[~frame["customer_id"].isin({h.customer_id for h in held})].reset_index(drop=True)

    context = gx.get_context(mode="ephemeral")
    context.enable_analytics(False)
    context.variables.progress_bars = {"globally": False}
    batch = (
        context.data_sources.add_pandas("warehouse")
        .add_dataframe_asset(name)
        .add_batch_definition_whole_dataframe("all_rows")
        .get_batch(batch_parameters={"dataframe": frame})
    )
    suite = gx.ExpectationSuite(name=name, expectations=expectations)
    result = batch.validate(suite, result_format="COMPLETE")
    failures = []
    for r in result.results:
        if r.success:
            continue
        indexes = r.result.get("unexpected_index_list") or []
        customers = sorted({frame.iloc[i]["customer_id"] for i in indexes if isinstance(i, int)}, key=str)
        failures.append(
            {
                "expectation": r.expectation_config.type,
                "column": r.expectation_config.kwargs.get("column") or r.expectation_config.kwargs.get("column_list"),
                "unexpected_count": r.result.get("unexpected_count", len(indexes)),
                "customers": customers,
                "examples": [str(v) for v in (r.result.get("partial_unexpected_list") or [])[:5]],
            }
        )
    return SuiteOutcome(
        suite=name,
        success=bool(result.success) and not held,
        rows=rows,
        failures=failures,
        held=tuple(held),
        table=table,
        table_rows=table_rows,
    )


def validate_usage_upload(con: duckdb.DuckDBPyConnection, contract: Contract) -> SuiteOutcome:
    """What the Stripe upload will send: one row per customer, meter and period that changed."""
    gx = great_expectations()

    held = usage_holds(con, contract)
    frame = _frame(
        con,
        f"""
        select u.customer_id, u.meter, u.period_start, u.period_end, u.quantity, u.event_count,
               m.aggregation
        from ({TO_SEND_SQL}) as u
        left join contract.meters as m on m.meter = u.meter
        """,
    )
    # Stripe takes meter event values of at most 15 significant digits; a sum of many
    # precise values can exceed that, and Stripe would reject the upload.
    frame["quantity_significant_digits"] = [significant_digits(q) for q in frame["quantity"]]
    meters = [m.key for m in contract.meters]
    customers = [c.id for c in contract.customers]
    ex = gx.expectations
    expectations = [
        ex.ExpectColumnValuesToNotBeNull(column="customer_id"),
        ex.ExpectColumnValuesToNotBeNull(column="meter"),
        ex.ExpectColumnValuesToNotBeNull(column="period_start"),
        ex.ExpectColumnValuesToNotBeNull(column="quantity"),
        ex.ExpectColumnValuesToBeInSet(column="customer_id", value_set=customers),
        ex.ExpectColumnValuesToBeInSet(column="meter", value_set=meters),
        ex.ExpectCompoundColumnsToBeUnique(column_list=["customer_id", "meter", "period_start"]),
        ex.ExpectColumnPairValuesAToBeGreaterThanB(column_A="period_end", column_B="period_start"),
        ex.ExpectColumnValuesToBeBetween(column="event_count", min_value=0),
        ex.ExpectColumnValuesToBeBetween(column="quantity_significant_digits", max_value=STRIPE_MAX_DIGITS),
    ]
    return _validate("usage_upload", frame, expectations, held, *_table_rows(con, "marts.fct_usage_by_period"))


def validate_shadow_invoice(con: duckdb.DuckDBPyConnection, contract: Contract) -> SuiteOutcome:
    """Our own invoice lines of the periods that change: whole non-negative cents in the contract's currency."""
    gx = great_expectations()

    held = invoice_holds(con)
    frame = _frame(
        con,
        f"""
        select e.customer_id, e.meter, e.period_start, e.quantity, e.amount_cents, e.currency
        from marts.fct_invoice_lines_expected as e
        where exists (
            select 1 from ({TO_SEND_SQL}) as t where t.customer_id = e.customer_id and t.period_start = e.period_start
        )
        """,
    )
    ex = gx.expectations
    expectations = [
        ex.ExpectColumnValuesToNotBeNull(column="amount_cents"),
        ex.ExpectColumnValuesToBeBetween(column="amount_cents", min_value=0),
        ex.ExpectColumnValuesToBeInSet(column="currency", value_set=[contract.currency]),
        ex.ExpectCompoundColumnsToBeUnique(column_list=["customer_id", "meter", "period_start"]),
    ]
    return _validate("shadow_invoice", frame, expectations, held, *_table_rows(con, "marts.fct_invoice_lines_expected"))

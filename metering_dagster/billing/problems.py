"""One customer's failing Stripe read never stops the others.

A step that works customer by customer (object sync, the Stripe snapshot, period close) runs each
customer's Stripe work inside `CustomerProblems.guard(customer_id)`: a Stripe error (404, 5xx or a
timeout after the retries) or an object Stripe returned that we cannot read (a missing or malformed
field) becomes that customer's problem, and the step goes on with the others. At the end of the
step its problems replace the ones it recorded before in `ops.stripe_customer_problems`; the asset
check `stripe_customers_readable` fails while any row is there, naming each customer, the step and
the error, so the run ends with "needs attention".

Errors of our own warehouse (DuckDB) are not caught: they are not one customer's.
"""

from __future__ import annotations

import contextlib
import decimal
from collections.abc import Iterator
from dataclasses import dataclass, field

import duckdb
import stripe

from metering_dagster.schema import ensure_customer_problems_table
from metering_dagster.warehouse import insert_rows

TABLE = "ops.stripe_customer_problems"
# What one customer's read can raise: Stripe's errors, and the ways a malformed object fails to read.
CUSTOMER_ERRORS = (
    stripe.StripeError,
    KeyError,
    IndexError,
    TypeError,
    ValueError,
    AttributeError,
    decimal.InvalidOperation,
)
MAX_PROBLEM_CHARS = 300


def describe(error: BaseException) -> str:
    """A short, single-line description of the error for the customer's problem row."""
    if isinstance(error, stripe.StripeError):
        status = getattr(error, "http_status", None)
        text = getattr(error, "user_message", None) or str(error) or type(error).__name__
        kind = type(error).__name__ + (f" {status}" if status else "")
    else:
        kind, text = "unreadable Stripe object", f"{type(error).__name__}: {error}"
    line = " ".join(f"{kind}: {text}".split())
    return line if len(line) <= MAX_PROBLEM_CHARS else line[: MAX_PROBLEM_CHARS - 1] + "…"


@dataclass
class CustomerProblems:
    step: str
    by_customer: dict[str, list[str]] = field(default_factory=dict)

    def add(self, customer_id: str, problem: str) -> None:
        self.by_customer.setdefault(customer_id, []).append(problem)

    @contextlib.contextmanager
    def guard(self, customer_id: str) -> Iterator[None]:
        try:
            yield
        except CUSTOMER_ERRORS as error:
            self.add(customer_id, describe(error))

    def __contains__(self, customer_id: str) -> bool:
        return customer_id in self.by_customer

    def __bool__(self) -> bool:
        return bool(self.by_customer)

    def lines(self) -> list[str]:
        return [f"{customer}: {'; '.join(problems)}" for customer, problems in sorted(self.by_customer.items())]

    def record(self, con: duckdb.DuckDBPyConnection) -> None:
        """Replace this step's rows: a customer whose read works again is no longer a problem."""
        ensure_customer_problems_table(con)
        con.execute(f"DELETE FROM {TABLE} WHERE step = ?", [self.step])
        insert_rows(
            con,
            f"INSERT INTO {TABLE}",
            "(?, ?, ?, now())",
            [[c, self.step, "; ".join(p)] for c, p in sorted(self.by_customer.items())],
        )


def recorded_problems(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, str]]:
    """(customer, step, problem) of every customer whose Stripe reads failed in the last run of each step."""
    ensure_customer_problems_table(con)
    return con.execute(f"SELECT customer_id, step, problem FROM {TABLE} ORDER BY 1, 2").fetchall()

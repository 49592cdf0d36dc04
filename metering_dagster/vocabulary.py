"""Words the SQL and the Python share, defined once: the vars of `dbt_project/dbt_project.yml`.

The dbt models read them with `var(...)` (or the `sql_list` macro); Python reads the same file here, so the two
cannot drift. Read when first asked for, not at import.
"""

from __future__ import annotations

from functools import cache

import yaml

from metering_dagster.settings import REPO_ROOT

DBT_PROJECT_FILE = REPO_ROOT / "dbt_project" / "dbt_project.yml"


@cache
def _words(name: str) -> tuple[str, ...]:
    words = (yaml.safe_load(DBT_PROJECT_FILE.read_text()).get("vars") or {}).get(name)
    if not (isinstance(words, list) and words and all(isinstance(word, str) for word in words)):
        raise ValueError(f"{DBT_PROJECT_FILE}: vars.{name} must be a list of words, got {words!r}")
    return tuple(words)


def finalized_invoice_statuses() -> tuple[str, ...]:
    """Statuses of an invoice that left draft (Stripe: open, paid, uncollectible, void); it no longer changes."""
    return _words("finalized_invoice_statuses")


def billed_invoice_statuses() -> tuple[str, ...]:
    """Finalized statuses whose lines are billed: every finalized status but void."""
    return _words("billed_invoice_statuses")


def quarantine_reasons() -> tuple[str, ...]:
    """Every reason a landed line can be quarantined with (rpt_quarantined_events.reason)."""
    return _words("quarantine_reasons")


def aggregations() -> tuple[str, ...]:
    """How a meter can aggregate its events (the contract's `aggregation`)."""
    return _words("aggregations")


def additive_aggregations() -> tuple[str, ...]:
    """Aggregations under which a period's quantity is the sum of its days' quantities."""
    return _words("additive_aggregations")

"""The console's charts: Vega-Lite specs built with Altair from the same rows as the tables beside them.

The browser draws them with the vega, vega-lite and vega-embed shipped in static/vendor/ (as SVG). A chart's data
are numbers for drawing only: the exact values are in the tables and the `data-value` attributes of the page.
One mark per row: a daily chart has one bar per day with usage, an hourly chart one per hour with events.
"""

from __future__ import annotations

import copy
import json
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache

import altair as alt

_WIDTH, _HEIGHT = 560, 160


def _number(value: Decimal | None) -> float:
    return float(value) if value is not None else 0.0  # drawing only


def _spec(chart: alt.TopLevelMixin) -> dict:
    return chart.to_dict(validate=False)


def _time(t: date | datetime) -> str:
    return t.isoformat() if isinstance(t, datetime) else f"{t.isoformat()}T00:00:00Z"


# Altair takes milliseconds to build a spec: each kind of chart is built once (per unit and title) with no data,
# and every page fills a copy with its rows.
@lru_cache(maxsize=256)
def _bars_template(unit: str, hourly: bool, title: str) -> dict:
    time_unit = "yearmonthdatehours" if hourly else "yearmonthdate"
    chart = (
        alt.Chart(alt.Data(values=[]), width=_WIDTH, height=_HEIGHT, title=title)
        .mark_bar()
        .encode(
            x=alt.X("t:T", timeUnit=alt.TimeUnitParams(unit=time_unit, utc=True), title=None),
            y=alt.Y("q:Q", title=unit or "quantity"),
            tooltip=[alt.Tooltip("t:T", timeUnit=alt.TimeUnitParams(unit=time_unit, utc=True)), "q:Q"],
        )
    )
    return _spec(chart)


def bars(rows: list[tuple[date | datetime, Decimal]], unit: str, *, hourly: bool = False, title: str = "") -> dict:
    """One bar per row: (day or hour, quantity)."""
    spec = copy.deepcopy(_bars_template(unit, hourly, title))
    spec["data"] = {"values": [{"t": _time(t), "q": _number(q)} for t, q in rows]}
    return spec


@lru_cache(maxsize=256)
def _cumulative_template(unit: str, with_limit: bool) -> dict:
    line = (
        alt.Chart(alt.Data(values=[]), width=_WIDTH, height=_HEIGHT, title="Period to date")
        .mark_line(point=True)  # a period's first day is one point: a line alone would draw nothing
        .encode(
            x=alt.X("t:T", timeUnit=alt.TimeUnitParams(unit="yearmonthdate", utc=True), title=None),
            y=alt.Y("q:Q", title=unit or "quantity"),
        )
    )
    if not with_limit:
        return _spec(line)
    rule = alt.Chart(alt.Data(values=[])).mark_rule(color="#c0392b", strokeDash=[4, 3]).encode(y="limit:Q")
    return _spec(alt.layer(line, rule))


def cumulative(rows: list[tuple[date, Decimal]], unit: str, limit: Decimal | None, *, additive: bool) -> dict:
    """The period's usage to date, day by day (a running sum for sum and count meters, the day's value for the
    others), with the budget's limit as a rule when there is one."""
    total, values = Decimal(0), []
    for day, q in rows:
        total = total + q if additive else q
        values.append({"t": _time(day), "q": _number(total)})
    spec = copy.deepcopy(_cumulative_template(unit, limit is not None))
    if limit is None:
        spec["data"] = {"values": values}
    else:
        spec["layer"][0]["data"] = {"values": values}
        spec["layer"][1]["data"] = {"values": [{"limit": _number(limit)}]}
    return spec


def spec_json(spec: dict) -> str:
    """The spec as JSON safe inside `<script type="application/json">` (no `</script>` can close it early)."""
    return (
        json.dumps(spec, separators=(",", ":")).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    )

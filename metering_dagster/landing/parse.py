"""Parse JSON lines once, vectorized, without ever turning a JSON number into a float.

DuckDB's JSON functions (yyjson) read numbers as doubles: `0.30000000000000004444`
comes back as `0.30000000000000004`. Polars' JSON decoding does the same. So before
any JSON function sees a line, polars rewrites every number token outside strings
into a one-key object holding its exact text:

    {"value": 0.30000000000000004444}  ->  {"value": {"#num": "0.30000000000000004444"}}

Three regex passes over the whole column (no Python loop per line). JSON functions
then only ever see strings, and the number's text survives to the SQL that needs
it (the 15-significant-digit rule, exact DECIMAL sums). The marker object is
`NUMBER_KEY`; the dbt macro `json_scalar_text` reads it back.

yyjson is also more lenient than JSON (trailing commas, NaN, Infinity): `strict_json_ok`
rejects those so that such a line is quarantined as `invalid_json`.
"""

from __future__ import annotations

import polars as pl

NUMBER_KEY = "#num"
_STRING = r'"(?:[^"\\]|\\.)*"'
_NUMBER = r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?"
# Raw control characters cannot occur in valid JSON, so \x01/\x02 are safe markers.
_MARK_OPEN, _MARK_CLOSE = "\x01", "\x02"


def exact_json(lines: pl.Expr) -> pl.Expr:
    """Rewrite number tokens outside strings as {"#num": "<exact text>"} (valid JSON in, valid JSON out)."""
    return (
        lines.str.replace_all(f"({_STRING})|({_NUMBER})", f"${{1}}{_MARK_OPEN}${{2}}{_MARK_CLOSE}")
        .str.replace_all(_MARK_OPEN + _MARK_CLOSE, "", literal=True)
        .str.replace_all(f"{_MARK_OPEN}([^{_MARK_CLOSE}]*){_MARK_CLOSE}", f'{{"{NUMBER_KEY}":"${{1}}"}}')
    )


def strict_json_ok(lines: pl.Expr) -> pl.Expr:
    """False for the leniencies yyjson accepts but JSON forbids (trailing commas, NaN, Infinity, comments)."""
    skeleton = lines.str.replace_all(_STRING, '""').str.replace_all(_NUMBER, "0")
    bare = skeleton.str.replace_all(r"\b(?:true|false|null)\b", "")
    return ~(skeleton.str.contains(r",\s*[\]}]") | bare.str.contains(r"[A-Za-z/]"))


# Top-level fields parsed at landing into columns of raw.usage_lines.
FIELDS = ("event_id", "timestamp", "customer_id", "action", "environment")

_TYPE_SQL = """case
    when {j} is null then null
    when json_type({j}) = 'OBJECT' and json_exists({j}, '$."{key}"') then 'number'
    when json_type({j}) = 'VARCHAR' then 'string'
    else lower(json_type({j}))
end"""
_TEXT_SQL = """case
    when json_type({j}) = 'OBJECT' then {j} ->> '$."{key}"'
    when json_type({j}) in ('VARCHAR', 'BOOLEAN') then {j} ->> '$'
end"""


def fields_select_sql(source: str) -> str:
    """SELECT that turns (source_file, line_number, raw_line, landing_problem, exact_json, strict_ok) into raw.usage_lines columns.

    Parameters: $landing_run_id, $landed_at.
    """
    paths = ", ".join(f"'$.\"{f}\"'" for f in FIELDS)
    columns = []
    for i, field in enumerate(FIELDS, start=1):
        j = f"fields[{i}]"
        columns.append(f"{_TYPE_SQL.format(j=j, key=NUMBER_KEY)} as {field}_type")
        text_name = "timestamp_text" if field == "timestamp" else field
        columns.append(f"{_TEXT_SQL.format(j=j, key=NUMBER_KEY)} as {text_name}")
    return f"""
with lines as (
    select
        source_file,
        line_number,
        raw_line,
        landing_problem,
        case
            when strict_ok and json_valid(exact_json) then json_type(exact_json) = 'OBJECT'
            else false
        end as is_json_object,
        exact_json
    from {source}
),
parsed as (
    select
        *,
        case when is_json_object then json(exact_json) end as payload,
        case when is_json_object then json_extract(exact_json, [{paths}]) end as fields
    from lines
)
select
    $landing_run_id as landing_run_id,
    $landed_at as landed_at,
    source_file,
    line_number,
    raw_line,
    is_json_object,
    payload,
    {", ".join(columns)},
    landing_problem
from parsed
order by source_file, line_number
"""

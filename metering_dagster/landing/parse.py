"""Parse JSON lines once, vectorized, without ever turning a JSON number into a float.

DuckDB's JSON functions (yyjson) read numbers as doubles: `0.30000000000000004444`
comes back as `0.30000000000000004`. Polars' JSON decoding does the same. So before
any JSON function sees a line, polars rewrites every number token outside strings
into a one-key object holding its exact text:

    {"value": 0.30000000000000004444}  ->  {"value": {"#num": "0.30000000000000004444"}}

Two regex passes over the whole column (no Python loop per line). The first finds the
numbers: each match is the text before a number (strings whole, so digits inside strings
are never touched) and the number, and only a mark (`\\x02`) is added after it. The second
wraps each marked number. Two passes because a regex with groups costs a capture search
over every match, i.e. over the whole line; the first has no group, the second's matches
are a number long. JSON functions then only ever see strings, and the number's text
survives to the SQL that needs it (the 15-significant-digit rule, exact DECIMAL sums). The
marker object is `NUMBER_KEY`; the dbt macro `json_scalar_text` reads it back.

yyjson is also more lenient than JSON (trailing commas, NaN, Infinity): `strict_json_ok`
rejects those so that such a line is quarantined as `invalid_json`. It is costly, so it
runs only on the lines `may_be_lenient` picks out. A number with a leading zero (`01`, `-00.5`)
is not JSON either: it is caught on the marked text (`fields_select_sql`), where a number is
always `{"#num":"` followed by its text.

Before the numbers are marked, `screen_keys` makes the marker unmistakable and refuses keys
given twice:
- a user's key that starts with `#` (written `#` or `\\u0023`) gets one more `#` in the parsed
  payload, so that `{"#num": "abc"}` in a line stays an object and never reads as our number
  (the contract's field paths cannot start with `#`, so no meter reads such a key);
- a line with an object holding the same key twice (at any depth; `"a"` and `"\\u0061"` are
  the same key) is marked with `DUPLICATE_KEY_MARK` and landed as `duplicate_key`: which copy a
  JSON reader takes differs from reader to reader (DuckDB takes the first), so its amount is
  not known.
"""

from __future__ import annotations

import json
import re

import polars as pl

NUMBER_KEY = "#num"
_STRING = r'"(?:[^"\\]|\\.)*"'
_NUMBER = r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"  # JSON's digits are ASCII (\d would take any Unicode digit)
_BEFORE_AND_NUMBER = rf'(?:{_STRING}|[^"0-9-])*{_NUMBER}'
# Ends every line with a number, so that matches follow each other from the line's start
# (never restarting inside a string) and also cover the text after its last number.
# \x01 keeps the sentinel's 0 apart from a number ending the line.
_SENTINEL = "\x010"
# Put after each number found. A raw \x02 in a line (a control character: never JSON) leaves it
# invalid whatever the second pass makes of it.
_MARK = "\x02"


# Put before a line that holds a key twice: a raw control character, so the line is never valid JSON.
DUPLICATE_KEY_MARK = "\x03"
# A key of a line without backslashes (no string then holds a quote): its text and colon.
_KEY = r'"[^"\\]*":'
# Lines whose keys `_KEY` may miss: a backslash (escapes), space before a colon, a string that starts with a colon.
# JSON's whitespace only: a line with other spaces between its tokens is not JSON, whatever its keys.
_KEYS_UNCLEAR = r'"[ \t\r\n]+:|[{\[,:][ \t\r\n]*":'
_STRING_AND_COLON = re.compile(r'"(?:[^"\\]|\\.)*"(\s*:)?')


def _escape_hash_key(match: re.Match) -> str:
    text = match.group(0)
    if match.group(1) and text.startswith(('"#', '"\\u0023')):
        return '"#' + text[1:]
    return text


def _holds_a_key_twice(line: str) -> bool:
    found = False

    def check(pairs: list) -> None:
        nonlocal found
        found = found or len({key for key, _ in pairs}) < len(pairs)

    try:  # numbers stay text: nothing to convert, no limit on digits
        json.loads(line, object_pairs_hook=check, parse_int=str, parse_float=str, parse_constant=str)
    except (ValueError, RecursionError):  # not JSON (quarantined as such) or nested too deep to check
        return False
    return found


def screen_keys(lines: pl.Series) -> pl.Series:
    """Lines with a key given twice marked (`DUPLICATE_KEY_MARK`), user keys starting with `#` escaped.

    Vectorized screens pick the few lines that need a look in Python: those whose key texts repeat
    (same key in two objects, or twice in one) or cannot be read by the screen, and those with a `#`.
    """
    keys = lines.str.extract_all(_KEY)
    suspect = (
        (keys.list.n_unique() < keys.list.len())
        | lines.str.contains("\\", literal=True)
        | lines.str.contains(_KEYS_UNCLEAR)
    ).fill_null(False)
    hashed = (lines.str.contains("#", literal=True) | lines.str.contains("\\u0023", literal=True)).fill_null(False)
    for rows, fix in (
        (hashed.arg_true(), lambda line: _STRING_AND_COLON.sub(_escape_hash_key, line)),
        (suspect.arg_true(), lambda line: DUPLICATE_KEY_MARK + line if _holds_a_key_twice(line) else line),
    ):
        if len(rows):
            lines = lines.scatter(rows, [None if line is None else fix(line) for line in lines.gather(rows)])
    return lines


def exact_json(lines: pl.Expr) -> pl.Expr:
    """Rewrite number tokens outside strings as {"#num": "<exact text>"} (valid JSON in, valid JSON out),
    after `screen_keys`.

    A line that is not JSON (a stray `-`, a string never closed) may come out rewritten
    differently from a token-by-token scan, but always still invalid (tests/pipeline/test_landing.py).
    """
    marked = (
        pl.concat_str([lines.map_batches(screen_keys, return_dtype=pl.String), pl.lit(_SENTINEL)])
        .str.replace_all(_BEFORE_AND_NUMBER, f"${{0}}{_MARK}")
        .str.strip_suffix(_SENTINEL + _MARK)
    )
    # A marked number is never preceded by a digit or `-` (the first pass's text before a number
    # has none outside strings), so this wraps exactly the numbers the first pass found.
    return marked.str.replace_all(f"({_NUMBER}){_MARK}", f'{{"{NUMBER_KEY}":"${{1}}"}}')


def strict_json_ok(lines: pl.Expr) -> pl.Expr:
    """False for the leniencies yyjson accepts but JSON forbids (trailing commas, NaN, Infinity, comments)."""
    skeleton = lines.str.replace_all(_STRING, '""').str.replace_all(_NUMBER, "0")
    bare = skeleton.str.replace_all(r"\b(?:true|false|null)\b", "")
    return ~(skeleton.str.contains(r",\s*[\]}]") | bare.str.contains(r"[A-Za-z/]"))


def may_be_lenient(lines: pl.Expr) -> pl.Expr:
    """True for every line yyjson reads but `strict_json_ok` rejects (and some more): one cheap pass.

    Outside strings, yyjson's leniencies are a comma before `]`/`}` or a word at a value position
    (after `:`, `[` or `,`) that is not true/false/null (NaN, inf, Infinity, any case, maybe signed).
    Looking at the whole line, strings included, only adds lines to check.
    """
    return lines.str.contains(r",\s*[\]}]|[:\[,]\s*[-+]?(?:[A-Za-eg-mo-su-z/]|t[^r]|f[^a]|n[^u])")


# Top-level fields parsed at landing into columns of raw.usage_lines.
FIELDS = ("event_id", "timestamp", "customer_id", "action", "environment")

# Per field i (of n): types[i] at "$.field", types[n + i] at "$.field.#num" (not NULL: the field is a number),
# read by one json_type with a list of paths. The texts come from one json_transform to a struct of VARCHAR:
# a string's value, `true`/`false`, or for a number its marker object `{"#num":"<text>"}` as written by json(),
# whose text is cut out (it has no escapes: a number's text never needs any).
_IS_NUMBER_SQL = "(types[{i}] = 'OBJECT' and types[{n} + {i}] is not null)"
_TYPE_SQL = """case
    when {is_number} then 'number'
    when types[{i}] = 'VARCHAR' then 'string'
    else lower(types[{i}])
end"""
_NUMBER_TEXT_START = len(json.dumps({NUMBER_KEY: ""}, separators=(",", ":"))) - 1  # 1-based: after `{"#num":"`
_TEXT_SQL = """case
    when {is_number} then substr(texts."{field}", {start}, length(texts."{field}") - {start} - 1)
    when types[{i}] in ('VARCHAR', 'BOOLEAN') then texts."{field}"
end"""


def fields_select_sql(source: str) -> str:
    """SELECT that turns (source_file, line_number, raw_line, landing_problem, exact_json, strict_ok) into raw.usage_lines columns.

    Parameters: $landing_run_id, $landed_at. Rows keep the source's order (no sort: the source is in line order).
    Each line is parsed three times (valid?, the payload, and from the payload types and texts at once).
    """
    n = len(FIELDS)
    paths = [f"'$.\"{f}\"'" for f in FIELDS] + [f'\'$."{f}"."{NUMBER_KEY}"\'' for f in FIELDS]
    texts_struct = json.dumps({f: "VARCHAR" for f in FIELDS})
    columns = []
    for i, field in enumerate(FIELDS, start=1):
        is_number = _IS_NUMBER_SQL.format(i=i, n=n)
        columns.append(f"{_TYPE_SQL.format(i=i, is_number=is_number)} as {field}_type")
        text_name = "timestamp_text" if field == "timestamp" else field
        text = _TEXT_SQL.format(i=i, is_number=is_number, field=field, start=_NUMBER_TEXT_START)
        columns.append(f"{text} as {text_name}")
    return f"""
with lines as (
    select
        source_file,
        line_number,
        raw_line,
        landing_problem,
        exact_json,
        -- json() writes it minified: an object's text starts with `{{`
        -- a number with a leading zero (01, -00.5) is not JSON
        case
            when strict_ok and json_valid(exact_json) and not regexp_matches(exact_json, '\\{{"#num":"-?0[0-9]')
                then json(exact_json)
        end as valid_json
    from {source}
),
parsed as (
    select
        *,
        coalesce(starts_with(valid_json, '{{'), false) as is_json_object,
    from lines
),
typed as (
    select
        *,
        case when is_json_object then valid_json end as payload,
        case when is_json_object then json_type(valid_json, [{", ".join(paths)}]) end as types,
        case when is_json_object then json_transform(valid_json, '{texts_struct}') end as texts
    from parsed
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
    coalesce(
        landing_problem,
        case when starts_with(exact_json, '{DUPLICATE_KEY_MARK}') and not starts_with(raw_line, '{DUPLICATE_KEY_MARK}')
            then 'duplicate_key' end
    ) as landing_problem
from typed
"""

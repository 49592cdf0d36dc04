"""Hostile contracts: keys given twice, alias bombs, long values, files that are not UTF-8, ids that HTTP
headers cannot carry, and a fuzz of generated contracts. Every one either validates with its prices exactly
as written, or is refused (exit 3) with each error listed, short, file named."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metering_dagster.contract import ContractError, load_contract

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "data" / "demo"
GOOD = """\
environment: test
currency: usd
meters:
  - key: tokens
    action: use
    value: metadata.tokens
    aggregation: sum
    price:
      model: graduated
      tiers:
        - {up_to: 100, unit_amount_decimal: "1"}
        - {up_to: inf, unit_amount_decimal: "0.5"}
customers:
  - id: cus_a
    billing_anchor: "2026-10-01T00:00:00Z"
"""


def refused(tmp_path: Path, text: str | bytes) -> list[str]:
    path = tmp_path / "metering.yml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ContractError) as info:
        load_contract(path)
    return info.value.errors


@pytest.mark.parametrize(
    ("text", "line", "first", "key"),
    [
        (GOOD + "environment: live\n", 16, 1, "environment"),  # top level: the last would win
        (GOOD.replace("    aggregation: sum\n", "    aggregation: sum\n    aggregation: max\n"), 8, 7, "aggregation"),
        (
            GOOD.replace(
                '{up_to: 100, unit_amount_decimal: "1"}',
                '{up_to: 100, unit_amount_decimal: "1", unit_amount_decimal: "9"}',
            ),
            11,
            11,
            "unit_amount_decimal",
        ),
        (GOOD.replace("  - id: cus_a\n", "  - id: cus_a\n    id: cus_b\n"), 15, 14, "id"),
    ],
)
def test_keys_given_twice_are_refused_with_file_line_and_key(tmp_path, text, line, first, key):
    errors = refused(tmp_path, text)
    assert f"metering.yml: line {line}: key '{key}' given twice in one mapping (first at line {first})" in errors[0]


BOMB = "\n".join(
    [f"l0: &l0 [{', '.join(['lol'] * 9)}]"]
    + [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 9)]
    + ["environment: *l8", "currency: *l8", "meters: *l8", "customers: *l8", ""]
)


def test_an_alias_bomb_fails_fast_in_little_memory_with_a_short_message(tmp_path):
    assert len(BOMB) < 1024
    (tmp_path / "metering.yml").write_text(BOMB)
    # a child process with 1 GB of address space at most: the bomb expands to gigabytes
    code = textwrap.dedent(f"""
        import resource, sys, time
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
        from metering_dagster.contract import ContractError, load_contract
        start = time.monotonic()
        try:
            load_contract({str(tmp_path / "metering.yml")!r})
        except ContractError as error:
            print(len(str(error)), round(time.monotonic() - start, 3))
            print(str(error)[:2000])
        """)
    result = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120, cwd=REPO
    )
    assert result.returncode == 0, result.stderr[-2000:]
    size, seconds = result.stdout.split("\n", 1)[0].split()
    assert int(size) < 500 and float(seconds) < 2, result.stdout
    assert "aliases" in result.stdout and "not accepted" in result.stdout


def test_error_texts_are_bounded(tmp_path):
    long_value = "x" * 100_000
    text = GOOD.replace("environment: test", f"environment: {long_value}").replace("cus_a", "c" * 5000)
    text = text.replace("metadata.tokens", "metadata." + "t" * 50_000).replace("currency: usd", f"{'k' * 1000}: 1")
    errors = refused(tmp_path, text)
    assert len(errors) >= 3
    assert all(len(e) < 300 for e in errors), [len(e) for e in errors]


LATIN1 = GOOD.replace("currency: usd", "currency: usd  # café").encode("latin-1")


@pytest.mark.parametrize(
    "content",
    [
        LATIN1,
        b"\xef\xbb\xbf" + LATIN1,  # a BOM is fine, the byte after it is not
        GOOD.encode()[:60] + b"\xff\xfe" + GOOD.encode()[60:],  # invalid UTF-8
        b"\xff\xfe" + GOOD.encode("utf-16-le"),  # UTF-16
    ],
)
def test_a_file_that_is_not_utf8_is_a_contract_error_naming_the_byte(tmp_path, content):
    with pytest.raises(UnicodeDecodeError) as bad:
        content.decode("utf-8")
    position = bad.value.start
    line = content[:position].count(b"\n") + 1
    errors = refused(tmp_path, content)
    assert errors == [
        (
            f"metering.yml: not UTF-8: byte 0x{content[position]:02X} at byte position {position} "
            f"(line {line}); save the file as UTF-8"
        )
    ]


def test_metering_run_exits_3_on_a_latin1_contract(metering_env):
    metering_env["contract"].write_bytes(LATIN1)
    result = subprocess.run(
        [sys.executable, "-m", "metering_dagster.cli", "run"],
        check=False,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert result.returncode == 3, result.stderr[-3000:]
    assert "metering.yml: not UTF-8: byte 0xE9 at byte position 38 (line 2)" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("cid", "escaped"),
    [
        ("cus_\U0001f600", "'cus_\\U0001f600'"),  # an emoji: not Latin-1, so not an HTTP header
        ("cus_\n", "'cus_\\n'"),
        ("cus_\r\nX-Injected: 1", "'cus_\\r\\nX-Injected: 1'"),
        ("cus\tx", "'cus\\tx'"),
        ("caf\u00e9", "'caf\\xe9'"),
        (" cus", "' cus'"),
        ("cus\x7f", "'cus\\x7f'"),
    ],
)
def test_customer_ids_that_http_headers_cannot_carry_are_refused_shown_escaped(tmp_path, cid, escaped):
    quoted = cid.encode("unicode_escape").decode().replace('"', '\\"')
    errors = refused(tmp_path, GOOD.replace("id: cus_a", f'id: "{quoted}"'))
    assert errors == [
        (
            f"metering.yml: customers[0].id: must be printable ASCII without a space at either end "
            f"(it is sent to Stripe in HTTP headers), got {escaped}"
        )
    ]


# --- fuzz: generated contracts from valid and invalid pieces -------------------------------------------

PRICE_TEXTS = st.one_of(
    st.tuples(st.integers(0, 10**27), st.text("0123456789", max_size=14)).map(
        lambda t: f"{t[0]}.{t[1]}" if t[1] else str(t[0])
    ),
    st.sampled_from(
        [
            "0",
            "1",
            "0.05",
            "0.000000000001",
            "0.0000000000001",
            "1e3",
            "-1",
            "1.",
            ".5",
            "01",
            "010",
            "1_000",
            "1:30",
            "0x10",
            "0o7",
            "+1",
            "12.500",
            "abc",
            "",
            "~",
            "null",
            "true",
            "yes",
            ".inf",
        ]
    ),
)
CUSTOMER_IDS = st.one_of(
    st.from_regex(r"cus_[A-Za-z0-9_.:-]{1,12}", fullmatch=True),
    st.text(min_size=1, max_size=8),  # any character: control, non-ASCII, quotes, spaces
    st.sampled_from(["cus_\U0001f600", "cus\n1", "c" * 101]),
)


def _yaml_string(text: str) -> str:
    """A double-quoted YAML scalar that reads back as exactly `text`."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif not ch.isprintable() or ch in "\u2028\u2029\ufeff":
            out.append(f"\\U{ord(ch):08x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


@st.composite
def contracts(draw):
    """(YAML text, prices as written, why it must be refused): the first copy of a key is the one meant."""
    must_refuse, prices, lines = [], [], ["environment: test", "currency: usd", "meters:"]
    for i in range(draw(st.integers(1, 3))):
        price = draw(PRICE_TEXTS)
        prices.append(price)
        as_yaml = _yaml_string(price) if draw(st.booleans()) else price or '""'
        lines += [
            f"  - key: m{i}",
            "    action: use",
            "    value: metadata.v",
            "    aggregation: sum",
            "    price:",
            "      model: per_unit",
            f"      unit_amount_decimal: {as_yaml}",
        ]
        if draw(st.integers(0, 9)) == 0:
            lines.append('      unit_amount_decimal: "7"')
            must_refuse.append("a price key given twice")
    lines.append("customers:")
    for j in range(draw(st.integers(1, 2))):
        cid = draw(CUSTOMER_IDS) + f"_{j}"
        if not (cid.isascii() and cid.isprintable() and cid == cid.strip() and len(cid) <= 100):
            must_refuse.append(f"customer id {cid!r}")
        lines += [f"  - id: {_yaml_string(cid)}", '    billing_anchor: "2026-10-01T00:00:00Z"']
    if draw(st.integers(0, 9)) == 0:
        lines += ["meters_note: &x [1, 2]", "customers_note: *x"]
        must_refuse.append("an alias")
    return "\n".join(lines) + "\n", prices, must_refuse


@settings(
    max_examples=int(os.environ.get("METERING_FUZZ_EXAMPLES", "200")),
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(contracts())
def test_generated_contracts_validate_exactly_or_list_every_error(tmp_path, generated):
    text, prices, must_refuse = generated
    path = tmp_path / "metering.yml"
    path.write_text(text)
    try:
        contract = load_contract(path)
    except ContractError as error:
        assert error.errors and all(e.startswith("metering.yml: ") and len(e) < 300 for e in error.errors), error.errors
        return
    assert not must_refuse, (must_refuse, text)
    assert [m.price.unit_amount_decimal for m in contract.meters] == [Decimal(p) for p in prices], text


def test_a_meter_key_with_a_final_newline_is_refused(tmp_path):
    """`$` in a pattern matches before a final newline: `tokens\\n` passed as a meter key (Stripe's event_name)."""
    errors = refused(tmp_path, GOOD.replace("key: tokens", 'key: "tokens\\n"'))
    assert errors[0].startswith("metering.yml: meters[0].key: must match [a-z][a-z0-9_]*"), errors

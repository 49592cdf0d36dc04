"""Read `metering.yml` into plain data, strictly: UTF-8 only, no YAML aliases, no key given twice.

A contract decides what customers pay, so nothing in it may be a guess:
- The file must be UTF-8 (a BOM is fine). Anything else is refused with the byte position: a
  Latin-1 `é` read as UTF-8 is not the character that was meant.
- A mapping with the same key twice is refused (YAML loaders keep the last silently).
- Aliases (`*name`) and merge keys (`<<`) are refused: one kilobyte of nested aliases expands to
  gigabytes ("billion laughs"), and a contract is short enough to write out.
- Nesting is bounded, and every value quoted in an error is cut short (`shown`).
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from .model import ContractError

MAX_DEPTH = 32  # the contract's own structure is 6 levels deep
SHOWN_CHARS = 40
MAX_YAML_ERROR_CHARS = 300


class _ExactLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """SafeLoader without float and timestamp resolution: `0.05` and dates stay strings. An integer
    is plain decimal digits: YAML 1.1 reads `010` as 8 (octal), `1_000` as 1000 and `1:30` as 90;
    those stay strings here (and are then refused where a number is expected, or read as written).

    libyaml's parser where PyYAML has it: a contract of 5,000 customers parses in 0.2 s instead of 1 s,
    and every step of a run reads the contract."""


_NOT_RESOLVED = ("tag:yaml.org,2002:float", "tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:int")
_ExactLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _NOT_RESOLVED]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_ExactLoader.add_implicit_resolver("tag:yaml.org,2002:int", re.compile(r"^-?(?:0|[1-9][0-9]*)$"), list("-0123456789"))

MERGE_TAG = "tag:yaml.org,2002:merge"


def shown(value: Any) -> str:
    """A value for an error message: escaped (ascii), at most SHOWN_CHARS characters of it; containers by size."""
    if isinstance(value, dict):
        return f"a mapping of {len(value)} keys"
    if isinstance(value, (list, tuple)):
        return f"a list of {len(value)} items"
    if isinstance(value, str) and len(value) > SHOWN_CHARS:
        text = ascii(value[:SHOWN_CHARS])
        return f"{text[:-1]}…{text[-1]} ({len(value)} characters)"
    try:
        text = ascii(value)
    except ValueError:  # an int of more digits than Python prints
        return f"a {type(value).__name__} too long to show"
    return text if len(text) <= SHOWN_CHARS + 2 else text[:SHOWN_CHARS] + "…"


def decode(data: bytes, name: str) -> str:
    """The text of a UTF-8 file (BOM dropped); ContractError naming the byte position otherwise."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        at = exc.start + (3 if data.startswith(b"\xef\xbb\xbf") else 0)
        line = data.count(b"\n", 0, at) + 1
        message = (
            f"{name}: not UTF-8: byte 0x{data[at]:02X} at byte position {at} (line {line}); save the file as UTF-8"
        )
        raise ContractError([message]) from None


def parse(text: str, name: str) -> Any:
    """The YAML document as plain data (strings, ints, bools, None, lists, dicts), or ContractError."""
    loader = _ExactLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except yaml.YAMLError as exc:
            raise ContractError([f"{name}: not valid YAML: {_cut(str(exc))}"]) from None
        if node is None:
            return None
        problems = _structure_problems(node, loader)
        if problems:
            raise ContractError([f"{name}: {problem}" for problem in problems])
        try:
            return loader.construct_document(node)
        except yaml.YAMLError as exc:
            raise ContractError([f"{name}: not valid YAML: {_cut(str(exc))}"]) from None
        except ValueError:  # Python reads no integer of more than 4,300 digits
            raise ContractError([f"{name}: an integer has more than 4300 digits"]) from None
    finally:
        loader.dispose()


def _cut(text: str) -> str:
    return text if len(text) <= MAX_YAML_ERROR_CHARS else text[:MAX_YAML_ERROR_CHARS] + "…"


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _structure_problems(root: yaml.Node, loader: yaml.BaseLoader) -> list[str]:
    """Aliases, merge keys, keys given twice and excessive nesting, each with its line.

    Walks the composed node graph without recursion; an alias is the same node reached twice,
    so each node is visited once and an alias bomb costs no more than its own text.
    """
    problems: list[str] = []
    aliases: list[int] = []
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if id(node) in seen:
            aliases.append(_line(node))
            continue
        seen.add(id(node))
        if depth > MAX_DEPTH:
            problems.append(f"line {_line(node)}: nested more than {MAX_DEPTH} levels deep")
            continue
        if isinstance(node, yaml.SequenceNode):
            stack.extend((item, depth + 1) for item in reversed(node.value))
        elif isinstance(node, yaml.MappingNode):
            first_line: dict[Any, int] = {}
            for key_node, value_node in node.value:
                if key_node.tag == MERGE_TAG:
                    problems.append(f"line {_line(key_node)}: merge keys (<<) are not accepted; write the keys out")
                elif isinstance(key_node, yaml.ScalarNode):
                    key = _scalar(key_node, loader)
                    if key in first_line:
                        problems.append(
                            f"line {_line(key_node)}: key {shown(key)} given twice in one mapping (first at line "
                            f"{first_line[key]}); remove one, which one was meant cannot be guessed"
                        )
                    else:
                        first_line[key] = _line(key_node)
                stack.append((value_node, depth + 1))
                stack.append((key_node, depth + 1))
    if aliases:
        problems.append(
            f"line {aliases[0]}: YAML aliases (*name) are not accepted ({len(aliases)} uses of anchored values, the "
            "first anchored here); write each value out"
        )
    return problems


def _scalar(node: yaml.ScalarNode, loader: yaml.BaseLoader) -> Any:
    """The key as the loader will build it (`key` and `"key"` are one key), or its tag and text if it cannot be."""
    try:
        value = loader.construct_object(node)
        hash(value)
        return value
    except (yaml.YAMLError, TypeError, ValueError):
        return (node.tag, node.value)

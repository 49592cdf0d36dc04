"""The environment is read in one place: `settings.py` (and the Dagster resources module that feeds `dg.EnvVar`).

A read anywhere else is a setting a newcomer cannot find, checked nowhere, and often done at import time.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "metering_dagster"
ALLOWED = {"settings.py", "defs/resources.py"}


def environment_uses(tree: ast.AST) -> list[tuple[int, str]]:
    """Every `os.environ`, `os.getenv`, `os.putenv`, `environ.get` and `from os import environ/getenv` in `tree`."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id == "os" and node.attr in ("environ", "getenv", "putenv", "unsetenv", "environb"):
                found.append((node.lineno, f"os.{node.attr}"))
            elif node.value.id == "environ" and node.attr in ("get", "setdefault", "update", "pop"):
                found.append((node.lineno, f"environ.{node.attr}"))
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            found += [
                (node.lineno, f"from os import {a.name}")
                for a in node.names
                if a.name in ("environ", "getenv", "putenv", "environb")
            ]
    return found


def test_only_the_settings_and_resources_modules_read_the_environment():
    outside = [
        f"{path.relative_to(PACKAGE)}:{line}: {what}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.relative_to(PACKAGE).as_posix() not in ALLOWED
        for line, what in environment_uses(ast.parse(path.read_text(), filename=str(path)))
    ]
    assert outside == []


def test_the_walk_finds_each_form_of_read():
    source = (
        "import os\nfrom os import environ\nos.environ['A'] = '1'\nos.getenv('B')\nenviron.get('C')\n"
        "os.environ.setdefault('D', '')\n"
    )
    assert [what for _, what in environment_uses(ast.parse(source))] == [
        "from os import environ",
        "os.environ",
        "os.getenv",
        "environ.get",
        "os.environ",
    ]

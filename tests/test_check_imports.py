"""The import checker finds what Python hides: cycles through function-level imports, imports from above."""

import importlib.util
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "check_imports.py"


def _checker():
    spec = importlib.util.spec_from_file_location("check_imports", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["check_imports"] = module
    spec.loader.exec_module(module)
    return module


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "pkg"
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_a_cycle_through_a_function_level_import_is_found(tmp_path):
    check = _checker()
    root = _package(
        tmp_path,
        {
            "__init__.py": "",
            "cli.py": "from pkg.demo import run\n",
            "demo.py": "def run():\n    from pkg.cli import main\n    return main\n",
            "settings.py": "",
        },
    )
    graph = check.build_graph(root)
    assert check.cycles(graph) == [["pkg.cli", "pkg.demo"]]


def test_relative_and_submodule_imports_resolve_and_an_upward_import_is_named(tmp_path):
    check = _checker()
    root = _package(
        tmp_path,
        {
            "__init__.py": "",
            "settings.py": "from . import cli\n",  # the bottom layer reaching the top
            "cli.py": "from .periods import close\n",
            "periods/__init__.py": "",
            "periods/close.py": "from ..settings import x\n",
        },
    )
    graph = check.build_graph(root)
    assert graph["pkg.settings"] == {"pkg.cli": 1}
    assert graph["pkg.cli"] == {"pkg.periods": 1, "pkg.periods.close": 1}  # the package runs first
    assert graph["pkg.periods.close"] == {"pkg.settings": 1}
    upward, unplaced = check.upward_imports(graph, "pkg")
    assert upward == ["pkg.settings:1 imports pkg.cli (cli is above foundation)"]
    assert unplaced == []
    assert check.cycles(graph) == [["pkg.cli", "pkg.periods.close", "pkg.settings"]]


def test_the_package_has_no_cycle_no_upward_import_and_every_module_a_layer(capsys):
    """What `make check-imports` (and CI) runs on metering_dagster: it exits 0 and names nothing."""
    assert _checker().main([]) == 0, capsys.readouterr().out
    assert capsys.readouterr().out.endswith(": 0 cycles, 0 upward imports, 0 without a layer\n")

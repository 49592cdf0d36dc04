"""Import cycles and upward imports among the package's modules, function-level imports included.

    python scripts/check_imports.py [--package metering_dagster]

Every `import` and `from ... import` in a module counts, wherever it sits (module level, inside a function,
under `if TYPE_CHECKING:`): a function-level import hides a cycle from Python, not from the design. Two
findings, each printed with the modules and lines involved; the exit code is 1 when there is any:

- a cycle: modules that import each other, directly or through others (strongly connected components);
- an upward import: a module importing from a layer above its own (LAYERS, bottom to top).
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import defaultdict
from pathlib import Path

# Bottom to top: a module may import from its own layer and the layers below. The first matching prefix wins;
# a module no prefix matches is reported, so a new folder gets a place before it gets code.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundation", ("settings", "vocabulary", "schema", "display", "progress", "warehouse", "locks")),
    ("contract", ("contract",)),
    ("landing, billing, transform, budgets", ("landing", "billing", "transform", "budgets")),
    ("periods", ("periods",)),
    ("quality", ("quality",)),
    ("serving", ("serving",)),
    ("defs", ("defs", "definitions")),
    ("commands", ("commands",)),
    ("cli", ("cli",)),
]


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, module: str, is_package: bool) -> list[tuple[str, int]]:
    """(imported module, line) for every import in the file, relative ones resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".") if is_package else module.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            found.append((base, node.lineno))
            # `from pkg import sub` imports the submodule `pkg.sub` when there is one.
            found += [(f"{base}.{alias.name}", node.lineno) for alias in node.names]
    return found


def build_graph(root: Path) -> dict[str, dict[str, int]]:
    files = {module_name(p, root): p for p in root.rglob("*.py")}
    graph: dict[str, dict[str, int]] = defaultdict(dict)
    for module, path in files.items():
        for target, line in imports_of(path, module, path.name == "__init__.py"):
            # The deepest project module the import names (a name inside a module is not a module).
            while target and target not in files:
                target = target.rpartition(".")[0]
            if target and target != module and not module.startswith(target + "."):
                graph[module].setdefault(target, line)
        graph.setdefault(module, {})
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, {})))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def layer_of(module: str, package: str) -> int | None:
    local = module.removeprefix(package + ".") if module != package else ""
    head = local.split(".")[0]
    for rank, (_, prefixes) in enumerate(LAYERS):
        if head in prefixes:
            return rank
    return None


def upward_imports(graph: dict[str, dict[str, int]], package: str) -> tuple[list[str], list[str]]:
    problems, unplaced = [], []
    for module in sorted(graph):
        mine = layer_of(module, package)
        if module == package:
            continue
        if mine is None:
            unplaced.append(module)
            continue
        for target, line in sorted(graph[module].items()):
            theirs = layer_of(target, package)
            if theirs is not None and theirs > mine:
                problems.append(f"{module}:{line} imports {target} ({LAYERS[theirs][0]} is above {LAYERS[mine][0]})")
    return problems, unplaced


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--package", default="metering_dagster")
    args = parser.parse_args(argv)
    root = Path(__file__).resolve().parent.parent / args.package
    graph = build_graph(root)
    found = cycles(graph)
    upward, unplaced = upward_imports(graph, args.package)
    for component in found:
        print(f"cycle among {len(component)} modules:")
        for module in component:
            inside = {t: line for t, line in graph[module].items() if t in component}
            print(f"  {module} -> " + ", ".join(f"{t} (line {line})" for t, line in sorted(inside.items())))
    for problem in upward:
        print(f"upward import: {problem}")
    for module in unplaced:
        print(f"no layer for {module}: give its folder a place in LAYERS")
    total = len(found) + len(upward) + len(unplaced)
    print(f"{len(graph)} modules: {len(found)} cycles, {len(upward)} upward imports, {len(unplaced)} without a layer")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())

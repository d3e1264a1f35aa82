"""The package layering of docs/architecture.md holds: every import (function-level ones too) is allowed
by its table, and no modules import each other in a cycle."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from pulse.config import REPO_ROOT

PACKAGE = REPO_ROOT / "pulse"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports(path: Path, known: set[str]) -> set[str]:
    """The pulse modules a file imports anywhere in it (``from pulse import x`` names module pulse.x)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("pulse.")}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("pulse"):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in known else node.module)
    return found - {"pulse"}


def package_of(module: str) -> str:
    return ".".join(module.split(".")[:2])


def allowed() -> dict[str, set[str]]:
    text = (REPO_ROOT / "docs" / "architecture.md").read_text()
    table = text.split("## What each package may import", 1)[1].split("\n## ", 1)[0]
    rules = {}
    for line in table.splitlines():
        if m := re.match(r"\| `(pulse\.\w+)` \| (.*) \|$", line):
            rules[m[1]] = set(re.findall(r"`(pulse\.\w+)`", m[2]))
    return rules


def test_every_package_is_in_the_layering_table():
    packages = {package_of(m) for m in modules()} - {"pulse"}
    assert packages == set(allowed()), "docs/architecture.md's table and the packages differ"


def test_no_import_crosses_the_layering():
    mods, rules = modules(), allowed()
    bad = [
        f"{name} imports {target}"
        for name, path in sorted(mods.items())
        if name != "pulse"
        for target in sorted(imports(path, set(mods)))
        if package_of(target) != package_of(name) and package_of(target) not in rules[package_of(name)]
    ]
    assert not bad, "imports docs/architecture.md does not allow:\n" + "\n".join(bad)


def test_no_modules_import_each_other_in_a_cycle():
    mods = modules()
    graph = {name: imports(path, set(mods)) & set(mods) for name, path in mods.items()}
    cycles = strongly_connected(graph)
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(sorted(c)) for c in cycles)


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm; returns the components with more than one module (or a module importing itself)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph[v]:
                found.append(component)

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_cycle_check_finds_a_cycle():
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]
    assert strongly_connected({"a": {"b"}, "b": set()}) == []


def test_functions_fit_on_a_screen():
    long = [
        f"{path.relative_to(REPO_ROOT)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for path in sorted(PACKAGE.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno + 1 > 60
    ]
    assert not long, "functions over 60 lines (split them where a name would explain a part):\n" + "\n".join(long)

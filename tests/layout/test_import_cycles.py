"""The edgenode package has no import cycles at module level.

A cycle makes the import order decide whether a name exists yet; imports inside functions
(done at call time) and under ``TYPE_CHECKING`` are not counted.  Importing ``a.b.c`` runs
``a`` and ``a.b`` first, so a module depends on those packages too, except its own
ancestors (always initialised before it) unless it reads a name from one.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "edgenode"


def _modules() -> tuple[dict[str, Path], set[str]]:
    """Python modules (name -> file) and compiled extension modules of the package."""
    mods: dict[str, Path] = {}
    exts: set[str] = set()
    for folder, dirs, files in os.walk(PACKAGE):
        dirs[:] = [d for d in dirs if d != "node_modules"]
        for file in files:
            f = Path(folder, file)
            parts = list(f.relative_to(ROOT).parts)
            if f.suffix == ".py":
                parts[-1] = f.stem
                if parts[-1] == "__init__":
                    parts.pop()
                mods[".".join(parts)] = f
            elif f.suffix == ".so":
                exts.add(".".join(parts[:-1] + [f.name.split(".")[0]]))
    return mods, exts


def _module_level_imports(body: list[ast.stmt]) -> list[ast.Import | ast.ImportFrom]:
    out: list[ast.Import | ast.ImportFrom] = []
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            out.append(node)
        elif isinstance(node, ast.If):
            test = node.test
            if getattr(test, "id", None) != "TYPE_CHECKING" and getattr(test, "attr", None) != "TYPE_CHECKING":
                out += _module_level_imports(node.body)
            out += _module_level_imports(node.orelse)
        elif isinstance(node, ast.Try):
            out += _module_level_imports(node.body + node.orelse + node.finalbody)
            for handler in node.handlers:
                out += _module_level_imports(handler.body)
    return out


def import_graph() -> dict[str, set[str]]:
    mods, exts = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in _module_level_imports(ast.parse(path.read_text()).body):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(up + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods or f"{base}.{a.name}" in exts
                           else base for a in node.names]
            for target in targets:
                if target in mods and target != name:
                    graph[name].add(target)
                parts = target.split(".")
                for i in range(1, len(parts)):
                    pkg = ".".join(parts[:i])
                    if pkg in mods and not (name + ".").startswith(pkg + "."):
                        graph[name].add(pkg)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    component = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        component.append(w)
                        if w == v:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def test_the_detector_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_graph_sees_the_package() -> None:
    graph = import_graph()
    assert "edgenode.devkit.localnode" in graph
    assert "edgenode.config" in graph["edgenode.devkit.manifest"]


def test_no_module_level_import_cycles() -> None:
    graph = import_graph()
    assert cycles(graph) == [], "\n".join(
        f"{c}: " + "; ".join(f"{m} -> {sorted(graph[m] & set(c))}" for m in c) for c in cycles(graph))

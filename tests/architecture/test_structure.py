"""The package's shape: no import cycles between its modules, and short functions in the public API.

Both are read from the source with :mod:`ast` (nothing is imported), so the checks are fast and see the imports made
inside functions too, which a run-time import graph would miss.
"""

from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path

import infarctsam

PACKAGE = Path(infarctsam.__file__).resolve().parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(target: str, modules: dict[str, Path]) -> str | None:
    """The longest known module that ``target`` names (``a.b.func`` -> ``a.b``)."""
    while target:
        if target in modules:
            return target
        target = target.rpartition(".")[0]
    return None


def _targets(name: str, path: Path) -> list[str]:
    """Every ``infarctsam.*`` name that module ``name`` imports anywhere in its body (functions included):
    ``import a.b`` gives ``a.b``; ``from a import b, c`` gives ``a.b`` and ``a.c`` (a submodule or a name in ``a``)."""
    is_package = path.name == "__init__.py"
    targets: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            targets += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([base] if base else []))
            targets += [f"{base}.{alias.name}" for alias in node.names]
    return [t for t in targets if t.split(".")[0] == PACKAGE.name]


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package modules that module ``name`` imports."""
    found = {_resolve(target, modules) for target in _targets(name, path)}
    return {module for module in found if module is not None and module != name}


@lru_cache(maxsize=1)
def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports (built once per test session)."""
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_cycle_finder_sees_a_cycle_and_its_absence():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_import_graph_sees_imports_inside_functions():
    graph = import_graph()
    assert len(graph) > 50
    # api.segment imports the engines inside the function body.
    assert any(dep.startswith("infarctsam.engines") for dep in graph["infarctsam.api"])


def _is_known(target: str, modules: dict[str, Path]) -> bool:
    """``target`` is a module of the package, or a name imported from one (``a.b.func`` with ``a.b`` a module)."""
    return target in modules or target.rpartition(".")[0] in modules


def test_every_package_import_names_a_module():
    """A module moved without updating an import (even one inside a function) is caught here, not by a user."""
    modules = _modules()
    assert _is_known("infarctsam.runtime.predictor", modules)
    assert _is_known("infarctsam.runtime.predictor.VolumePredictor", modules)
    assert not _is_known("infarctsam.model.predictor.VolumePredictor", modules)  # where it was before
    stale = [f"{name}: {target}" for name, path in modules.items() for target in _targets(name, path)
             if not _is_known(target, modules)]
    assert not stale, "imports of missing modules: " + ", ".join(stale)


def test_package_has_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def _longest_function(path: Path) -> tuple[str, int]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    spans = [(node.name, node.end_lineno - node.lineno + 1) for node in ast.walk(tree)
             if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]
    return max(spans, key=lambda span: span[1])


def test_api_functions_are_short():
    name, lines = _longest_function(PACKAGE / "api.py")
    assert lines <= 70, f"api.{name} is {lines} lines (limit 70)"

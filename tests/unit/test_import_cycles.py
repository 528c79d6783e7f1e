"""No two modules of one package import each other, directly or through others.

A static analysis of every module under ``packages/*/src`` and ``services/*/src``: the
``import`` statements of each (read with ``ast``, never executed) give the edges of a
graph of the modules of its top-level package, and a strongly connected component of
more than one module is a cycle.

What counts as an import, decided here:

- every ``import`` statement, wherever it stands: at module level, inside a function
  (a lazy import) and under ``if TYPE_CHECKING:``. A lazy or type-checking import that
  breaks a cycle at run time leaves it in the design: the two modules still depend on
  each other, and neither can be read, tested or moved without the other. The fix is
  the one STYLE.md names: move the shared type to a module both import (a small
  ``Protocol`` when one side only calls the other).
- ``from package import name`` is an edge to ``package.name`` when that is a module,
  else to ``package`` (its ``__init__``).
- Importing ``a.b.c`` is an edge to ``a.b.c`` only, not to the packages ``a`` and
  ``a.b`` whose ``__init__`` Python runs first: ``__init__`` re-exports from its
  modules, so counting those edges would make every package one cycle. A module that
  imports its own package's ``__init__`` by name is still caught.
- Only edges between modules of one top-level package count: the layering between
  distributions is ruff's banned-api rule (R1).
"""

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Cycles known and being removed elsewhere, each with its reason. The test fails when
# one is gone too, so that an entry cannot outlive its cycle.
KNOWN: dict[frozenset[str], str] = {}


def _modules() -> dict[str, tuple[Path, bool]]:
    """Every module's dotted name, with its file and whether it is a package."""
    modules: dict[str, tuple[Path, bool]] = {}
    for src in sorted([*ROOT.glob("packages/*/src"), *ROOT.glob("services/*/src")]):
        for path in src.rglob("*.py"):
            parts = list(path.relative_to(src).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            if is_package:
                parts.pop()
            modules[".".join(parts)] = (path, is_package)
    return modules


def _imported(
    name: str, path: Path, is_package: bool, modules: dict[str, tuple[Path, bool]]
) -> Iterator[str]:
    """The modules that module ``name`` imports, wherever the statement stands."""
    package = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if alias.name in modules)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            for alias in node.names:
                if f"{target}.{alias.name}" in modules:
                    yield f"{target}.{alias.name}"
                elif target in modules:
                    yield target


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, (path, is_package) in modules.items():
        top = name.partition(".")[0]
        graph[name] = {
            target
            for target in _imported(name, path, is_package, modules)
            if target != name and target.partition(".")[0] == top
        }
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan's)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component: set[str] = set()
            while not component or node not in component:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
            if len(component) > 1:
                found.append(frozenset(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_analysis_finds_a_cycle() -> None:
    # Through a lazy import and a relative one: both are edges.
    graph = {"p.a": {"p.b"}, "p.b": {"p.c"}, "p.c": {"p.a"}, "p.d": {"p.a"}}
    assert _cycles(graph) == [frozenset({"p.a", "p.b", "p.c"})]


def test_the_analysis_reads_every_kind_of_import(tmp_path: Path) -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "from . import sibling\n"
        "from .sub import thing\n"
        "if TYPE_CHECKING:\n"
        "    from p import types\n"
        "def lazy():\n"
        "    import p.late\n"
    )
    (tmp_path / "m.py").write_text(source)
    names = ["p", "p.m", "p.sibling", "p.sub", "p.types", "p.late"]
    modules = dict.fromkeys(names, (tmp_path / "x.py", False))
    imported = set(_imported("p.m", tmp_path / "m.py", False, modules))
    assert imported == {"p.sibling", "p.sub", "p.types", "p.late"}


def test_no_package_has_an_import_cycle() -> None:
    graph = _graph()
    assert len(graph) > 200, "the analysis found too few modules to be looking"
    cycles = _cycles(graph)
    unknown = [sorted(cycle) for cycle in cycles if cycle not in KNOWN]
    assert unknown == []
    gone = [sorted(cycle) for cycle in KNOWN if cycle not in cycles]
    assert gone == [], "a known cycle is gone: remove its KNOWN entry"

"""``imported_sources``: the workspace's source files a set of scripts runs, followed
through their imports.

An image that carries a few of our modules (the egress proxy's) is keyed by exactly
those files, so an unrelated change to the package does not rebuild it. Imports are
read from the source (``ast``), never executed: ``if TYPE_CHECKING:`` bodies are skipped,
relative imports resolved, and importing ``a.b.c`` counts ``a`` and ``a.b`` too.
"""

import ast
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from beephost_controller.images.errors import BackendImageError
from beephost_controller.images.keys import sha256_file

#: Our packages, by import name: their workspace member (``beephost_core``:
#: ``packages/core``); their sources are under ``<member>/src/``.
Members = Mapping[str, str]


def _module_file(workspace: Path, members: Members, dotted: str) -> Path | None:
    """The source file of one of our modules (``None``: not ours, or no such file)."""
    parts = dotted.split(".")
    member = members.get(parts[0])
    if member is None:
        return None
    base = workspace / member / "src" / Path(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _module_name(workspace: Path, members: Members, path: Path) -> str | None:
    for member in members.values():
        src = workspace / member / "src"
        if path.is_relative_to(src):
            parts = list(path.relative_to(src).with_suffix("").parts)
            return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    return None


def _is_type_checking(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _run_nodes(tree: ast.AST) -> Iterable[ast.AST]:
    """``ast.walk``, without ``if TYPE_CHECKING:`` bodies (never run)."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        if _is_type_checking(node):
            assert isinstance(node, ast.If)
            todo += node.orelse
            continue
        todo += ast.iter_child_nodes(node)


def _imported(tree: ast.AST, package: str | None) -> Iterable[str]:
    """Every dotted name an import in ``tree`` may load (relative ones resolved
    against ``package``), including ``from a import b``'s ``a.b``."""
    for node in _run_nodes(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                if package is None:
                    continue
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                module = ".".join([*anchor, module] if module else anchor)
            yield module
            yield from (f"{module}.{alias.name}" for alias in node.names)


def imported_sources(
    workspace: Path, scripts: Sequence[Path], members: Members
) -> dict[str, str]:
    """The sha256 of every source file of ``members`` that ``scripts`` import, by its
    path relative to ``workspace``: followed through imports, packages' ``__init__``
    included (importing ``a.b.c`` runs ``a`` and ``a.b``). The scripts themselves are
    not in it.

    Raises:
        BackendImageError: A script is missing.
    """
    todo: list[Path] = []
    for path in scripts:
        if not path.is_file():
            raise BackendImageError(f"{path} is missing")
        todo.append(path)
    seen: dict[Path, str] = {}
    roots = set(todo)
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen[path] = sha256_file(path)
        name = None if path in roots else _module_name(workspace, members, path)
        if name is None:
            package = None
        elif path.name == "__init__.py":
            package = name
        else:
            package = name.rpartition(".")[0]
        for dotted in _imported(ast.parse(path.read_text(), str(path)), package):
            parts = dotted.split(".")
            for depth in range(1, len(parts) + 1):
                found = _module_file(workspace, members, ".".join(parts[:depth]))
                if found is not None and found not in seen:
                    todo.append(found)
    return {
        path.relative_to(workspace).as_posix(): digest
        for path, digest in sorted(seen.items())
        if path not in roots
    }

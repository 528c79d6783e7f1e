"""docs/architecture.md lists every controller module, one line each, and no module
that is gone: the list is the next engineer's map, and it rotted once (a module added
without its line)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "services/controller/src/beephost_controller"
GUIDE = ROOT / "docs/architecture.md"


def _listed_modules() -> set[str]:
    """The module paths of the guide's tree, with each ``routes/`` router it names."""
    section = GUIDE.read_text().split("## The controller's modules", 1)[1]
    tree = section.split("```text", 1)[1].split("```", 1)[0]
    listed: set[str] = set()
    folder = ""
    for line in tree.splitlines():
        match = re.match(r"( *)(\S+)\s+(.*)", line)
        if match is None:
            continue
        indent, name, description = match.groups()
        if not indent:
            folder = name if name.endswith("/") else ""
        if name == "routes/":
            # One line for the package: "one APIRouter per resource: a, b, c".
            routers = description.split(":", 1)[1].split(",")
            listed.update(f"routes/{router.strip()}.py" for router in routers)
        elif name.endswith(".py"):
            listed.add(name if not indent else folder + name)
    return listed


def _modules() -> set[str]:
    return {path.relative_to(PACKAGE).as_posix() for path in PACKAGE.rglob("*.py")}


def test_the_guide_lists_every_controller_module() -> None:
    # A package's __init__.py is listed only where it holds more than its exports.
    unlisted = _modules() - _listed_modules()
    assert sorted(path for path in unlisted if not path.endswith("__init__.py")) == []


def test_the_guide_lists_no_module_that_is_gone() -> None:
    assert sorted(_listed_modules() - _modules()) == []

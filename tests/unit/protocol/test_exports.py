"""The public surface is explicit (R8): each package's ``__all__`` names exactly what its
``__init__`` imports for users, every name resolves, and the wire's whole vocabulary
(every command, every error) is in it."""

import types
from pathlib import Path

import pytest

import beephost_core
import beephost_protocol

ERRORS_DOC = Path(__file__).parents[3] / "docs" / "protocol" / "errors.md"


def _bound_names(module: types.ModuleType) -> set[str]:
    # What the package's __init__ binds: not its submodules, not private names.
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }


@pytest.mark.parametrize(
    "module", [beephost_protocol, beephost_core], ids=lambda m: m.__name__
)
def test_all_is_exactly_what_the_package_imports(module: types.ModuleType) -> None:
    assert len(module.__all__) == len(set(module.__all__)), "a name is listed twice"
    # A package that loads its exports on first use names them in ``_HOMES``.
    lazy = set(getattr(module, "_HOMES", {}))
    assert set(module.__all__) == _bound_names(module) | lazy
    for name in module.__all__:
        assert getattr(module, name) is not None


def test_every_pipe_command_is_exported() -> None:
    for name in ("Command", "SessionCommand"):
        assert name in beephost_protocol.__all__
    for cls in beephost_protocol.COMMANDS.values():
        assert getattr(beephost_protocol, cls.__name__) is cls


def test_every_error_is_exported_and_documented() -> None:
    documented = ERRORS_DOC.read_text()
    classes = set(beephost_protocol.ERROR_CLASSES.values())
    assert set(beephost_protocol.ErrorCode) == set(beephost_protocol.ERROR_CLASSES)
    for cls in classes | {beephost_protocol.BeepHostError}:
        assert getattr(beephost_protocol, cls.__name__) is cls
        assert f"`{cls.__name__}`" in documented, cls.__name__

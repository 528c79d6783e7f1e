"""What a backend server's process does at boot more cheaply than its libraries would.

A cold start is counted from the container's start to the first answer (issue 33), and
on engines whose storage driver gives each container its own page cache
(fuse-overlayfs) every module read costs. Two things the libraries do at boot only look
at installed distributions' metadata, through ``importlib.metadata`` (with email,
zipfile, csv and their kin: 25-70 ms in a fresh container on such an engine):

* pydantic looks for plugins (entry points of the ``pydantic`` group) when it builds
  its first model. A server's venv is ours and holds none, so
  :func:`without_pydantic_plugins` puts a loader that finds none in its place.
* a server's name carries its version: :func:`distribution_version` reads it from the
  name of the distribution's ``.dist-info`` directory, as the wheel format writes it.
"""

import os
import sys
import types
from collections.abc import Iterable

#: The module pydantic imports to find its plugins (a private one: if pydantic moves
#: it, the stand-in is a module nobody imports and the search simply happens again).
PYDANTIC_PLUGIN_LOADER = "pydantic.plugin._loader"


def _no_plugins() -> tuple[()]:
    return ()


def without_pydantic_plugins() -> None:
    """Let pydantic find no plugins without searching the installed distributions.

    Call before pydantic builds a model; later it has searched already, and this does
    nothing.
    """
    if PYDANTIC_PLUGIN_LOADER in sys.modules:
        return
    loader = types.ModuleType(PYDANTIC_PLUGIN_LOADER, "pydantic finds no plugins")
    loader.__dict__["get_plugins"] = _no_plugins
    sys.modules[PYDANTIC_PLUGIN_LOADER] = loader


def distribution_version(name: str, paths: Iterable[str] | None = None) -> str:
    """The version of the installed distribution ``name``, as ``importlib.metadata``
    gives it, from the first ``<name>-<version>.dist-info`` directory on ``paths``
    (default: ``sys.path``), without importing ``importlib.metadata``.

    Raises:
        LookupError: No such distribution is installed there.
    """
    # The wheel format (PEP 427, PEP 503) writes the name normalized, with underscores.
    wanted = name.lower().replace("-", "_").replace(".", "_") + "-"
    for path in sys.path if paths is None else paths:
        try:
            entries = os.listdir(path or ".")
        except OSError:  # a zip file or a directory that is not there
            continue
        for entry in sorted(entries):
            if entry.lower().startswith(wanted) and entry.endswith(".dist-info"):
                return entry[len(wanted) : -len(".dist-info")]
    raise LookupError(f"no installed distribution named {name!r}")

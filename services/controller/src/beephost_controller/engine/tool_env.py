"""The environment of every tool the controller runs (uv, pip through uv, mmdebstrap).

Never the controller's own: it holds ``BEEPHOST_CONTROLLER_TOKEN`` (and whatever else
the operator put there), and uv expands ``${VAR}`` in requirements files, so a tool
that inherits it can leak it to a URL of the user's choosing. A tool gets what it needs
to run and reach the index (``PATH``, locale, the CA bundle and proxy variables, uv's
own ``UV_*`` settings) and a private, empty ``HOME``; uv's cache, managed Pythons and
tools stay where they are (their paths are computed from the real environment).
"""

import atexit
import functools
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

#: Copied when set: what a tool needs to run and reach an index, no credentials.
PASSED = (
    "PATH",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TMPDIR",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "PIP_CERT",
    "VIRTUAL_ENV",
    *(f"{name}_proxy" for name in ("http", "https", "no", "all")),
    *(f"{name}_PROXY" for name in ("HTTP", "HTTPS", "NO", "ALL")),
)
#: uv's settings that are passed on (paths, TLS and index choices; never a password
#: variable such as UV_INDEX_*_PASSWORD or UV_PUBLISH_*).
UV_PASSED = (
    "UV_CACHE_DIR",
    "UV_NATIVE_TLS",
    "UV_SYSTEM_CERTS",
    "UV_INDEX_URL",
    "UV_DEFAULT_INDEX",
    "UV_EXTRA_INDEX_URL",
    "UV_INDEX",
    "UV_OFFLINE",
    "UV_PYTHON_INSTALL_DIR",
    "UV_PYTHON_DOWNLOADS",
    "UV_TOOL_DIR",
    "UV_TOOL_BIN_DIR",
    "UV_HTTP_TIMEOUT",
    "UV_CONCURRENT_DOWNLOADS",
)


@functools.cache
def private_home() -> Path:
    """An empty directory of this process, mode 0700: HOME for every tool it runs
    (removed when the process exits)."""
    home = Path(tempfile.mkdtemp(prefix="beephost-tool-home-"))
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    return home


def _data_dirs(source: Mapping[str, str]) -> dict[str, str]:
    # Where uv keeps its cache, Pythons and tools by default, under the real HOME:
    # the private HOME must not move them (a cold cache, a Python downloaded again).
    home = Path(source.get("HOME") or Path.home())
    cache = Path(source.get("XDG_CACHE_HOME") or home / ".cache")
    data = Path(source.get("XDG_DATA_HOME") or home / ".local" / "share")
    return {
        "UV_CACHE_DIR": str(cache / "uv"),
        "UV_PYTHON_INSTALL_DIR": str(data / "uv" / "python"),
        "UV_TOOL_DIR": str(data / "uv" / "tools"),
    }


def tool_environment(
    extra: Mapping[str, str] | None = None,
    *,
    source: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """A subprocess environment without secrets: see the module docstring.

    Args:
        extra: Set on top (``SSL_CERT_FILE`` of the settings, ``SOURCE_DATE_EPOCH``).
        source: The environment to pick from; default ``os.environ``.
    """
    source = os.environ if source is None else source
    env = _data_dirs(source)
    env.update({k: source[k] for k in (*PASSED, *UV_PASSED) if k in source})
    env["HOME"] = str(private_home())
    env.update(extra or {})
    return env

"""A tool killed by a signal (uv resolving, downloading, unpacking), said in words.

``subprocess`` reports a signal as a negative return code: "uv exited with -9" tells
nobody that the kernel's OOM killer ended the resolver because the controller's
container reached its memory limit. SIGKILL is what the OOM killer sends (and nothing
else in the controller does), so the words name memory and the limit the controller
runs under, read from its cgroup.
"""

import os
import signal
from pathlib import Path

#: Where the controller's own cgroup shows its memory limit (v2, then v1).
CGROUP = Path("/sys/fs/cgroup")
#: cgroup v1 says "no limit" with a huge page-rounded number: anything above this.
_NO_LIMIT_V1 = 1 << 60


def memory_limit(cgroup: Path = CGROUP) -> int | None:
    """The controller's memory limit in bytes, or ``None`` if it has none (or it
    cannot be read)."""
    for path in (cgroup / "memory.max", cgroup / "memory" / "memory.limit_in_bytes"):
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text == "max" or not text.isdigit():
            return None
        value = int(text)
        return None if value >= _NO_LIMIT_V1 else value
    return None


def _gib(size: int) -> str:
    return f"{size / (1 << 30):.1f} GiB"


def memory_words(limit: int | None, host: int | None) -> str:
    """The controller's memory limit, as the end of a sentence."""
    if limit is not None:
        return f"the controller's memory limit is {_gib(limit)}"
    if host is not None:
        return (
            f"the controller has no memory limit of its own (the host has {_gib(host)})"
        )
    return "the controller has no memory limit of its own"


def _host_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return None


def killed_words(what: str, returncode: int, advice: str) -> str | None:
    """Why ``what`` ended, if a signal ended it (``returncode < 0``), else ``None``.

    Args:
        what: The tool, as the sentence's subject ("the resolver").
        returncode: ``subprocess``'s return code.
        advice: What to do about running out of memory ("resolve fewer requirements
            or raise the controller's memory").
    """
    if returncode >= 0:
        return None
    number = -returncode
    try:
        name = signal.Signals(number).name
    except ValueError:
        name = f"signal {number}"
    if number != signal.SIGKILL:
        return f"{what} was killed by {name}"
    limit = memory_words(memory_limit(), _host_memory())
    return f"{what} was killed by SIGKILL, most likely out of memory: {limit}; {advice}"

"""The container's cgroup, read to explain a worker's death: OOM kills, process-limit hits.

Both cgroup versions Docker gives a container are understood:

* v2 (unified): ``memory.events`` (``oom_kill N``), ``memory.max``, ``pids.events``
  (``max N``) and ``pids.max`` in one directory;
* v1: ``memory/memory.oom_control`` (``oom_kill N``, Linux >= 4.13),
  ``memory/memory.limit_in_bytes``, ``pids/pids.events`` and ``pids/pids.max``.

The directory is the one ``/proc/self/cgroup`` names, else the mount's root (a container
sees its own cgroup there). Anything missing or unreadable reads as ``None``: outside a
container, or on an older kernel, callers simply know less. Everything takes the
filesystem ``root`` (tests pass a fake tree); stdlib only.
"""

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

_MOUNT = Path("sys/fs/cgroup")
#: Above this a "limit" is the kernel's way of saying none (v1 prints ~2**63 rounded).
_UNLIMITED = 1 << 60
#: Seconds a look at the OOM-kill count serves ``recent_oom_kills``.
OOM_LOOK_AGE = 1.0


@dataclass(frozen=True, slots=True)
class CgroupFiles:
    """Where this process's cgroup keeps what we read; ``None``: not available.

    Attributes:
        oom_events: A file with an ``oom_kill N`` line (OOM kills in the cgroup).
        memory_limit: The memory limit in bytes (``max`` in v2 when unlimited).
        pids_events: A file with a ``max N`` line (forks refused by the pids limit).
        pids_limit: The process limit (``max`` when unlimited).
    """

    oom_events: Path | None = None
    memory_limit: Path | None = None
    pids_events: Path | None = None
    pids_limit: Path | None = None


def memberships(text: str) -> dict[str, str]:
    """``/proc/self/cgroup`` as controller -> path; the v2 hierarchy's key is ``""``.

    A v1 line names its controllers comma-separated (``4:memory:/docker/ab``, or
    ``3:cpu,cpuacct:/x``); the v2 line is ``0::/path``.
    """
    found: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        for controller in controllers.split(",") if controllers else [""]:
            found.setdefault(controller, path)
    return found


def _first(directories: list[Path], name: str) -> Path | None:
    for directory in directories:
        candidate = directory / name
        if candidate.is_file():
            return candidate
    return None


def _candidates(base: Path, path: str | None) -> list[Path]:
    """The cgroup's own directory under ``base`` (if named and present), then ``base``."""
    relative = (path or "/").strip("/")
    own = base / relative if relative else base
    return [own, base] if own != base else [base]


def find(root: Path = Path("/")) -> CgroupFiles:
    """The files of this process's memory and pids cgroups under ``root``."""
    try:
        cgroups = memberships((root / "proc/self/cgroup").read_text())
    except OSError:
        cgroups = {}
    mount = root / _MOUNT
    if (mount / "cgroup.controllers").is_file():  # v2: one unified hierarchy
        directories = _candidates(mount, cgroups.get(""))
        return CgroupFiles(
            oom_events=_first(directories, "memory.events"),
            memory_limit=_first(directories, "memory.max"),
            pids_events=_first(directories, "pids.events"),
            pids_limit=_first(directories, "pids.max"),
        )
    memory = _candidates(mount / "memory", cgroups.get("memory"))
    pids = _candidates(mount / "pids", cgroups.get("pids"))
    return CgroupFiles(
        oom_events=_first(memory, "memory.oom_control"),
        memory_limit=_first(memory, "memory.limit_in_bytes"),
        pids_events=_first(pids, "pids.events"),
        pids_limit=_first(pids, "pids.max"),
    )


def parse_counter(text: str, key: str) -> int | None:
    """The value of a ``key N`` line (``oom_kill 3``), or None without one."""
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            with contextlib.suppress(ValueError):
                return int(value)
    return None


def parse_limit(text: str) -> int | None:
    """A limit file's value; None when unlimited (``max``, or v1's huge number)."""
    text = text.strip()
    if not text.isdigit():
        return None
    value = int(text)
    return value if value < _UNLIMITED else None


def read_counter(path: Path | None, key: str) -> int | None:
    """``parse_counter`` of a file; None if it is missing or unreadable."""
    if path is None:
        return None
    try:
        return parse_counter(path.read_text(), key)
    except OSError:
        return None


def read_limit(path: Path | None) -> int | None:
    """``parse_limit`` of a file; None if unlimited, missing or unreadable."""
    if path is None:
        return None
    try:
        return parse_limit(path.read_text())
    except OSError:
        return None


class Counter:
    """One ``key N`` line of a cgroup file, read with a single ``pread`` per look.

    The file stays open: a look costs about a microsecond, cheap enough for every
    request. Unavailable (``None``) if the file is missing or stops being readable.
    """

    def __init__(self, path: Path | None, key: str) -> None:
        self.key = key
        self._line = b"\n" + key.encode() + b" "  # where the value starts, after "\n"
        self._fd: int | None = None
        if path is not None:
            with contextlib.suppress(OSError):
                self._fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)

    def read(self) -> int | None:
        if self._fd is None:
            return None
        try:
            data = b"\n" + os.pread(self._fd, 4096, 0)
        except OSError:
            return None
        # parse_counter's answer, found by bytes searches: it runs per request.
        start = data.find(self._line)
        while start >= 0:
            start += len(self._line)
            end = data.find(b"\n", start)
            with contextlib.suppress(ValueError):
                return int(data[start:] if end < 0 else data[start:end])
            start = data.find(self._line, start)
        return None


class ContainerLimits:
    """The counters and limits of one process's cgroups, opened once."""

    def __init__(self, root: Path = Path("/")) -> None:
        self.files = find(root)
        self._oom_kills = Counter(self.files.oom_events, "oom_kill")
        self._pids_refused = Counter(self.files.pids_events, "max")
        self._oom_seen: int | None = None
        self._oom_looked_at = float("-inf")  # monotonic seconds: never looked yet

    def oom_kills(self) -> int | None:
        """Processes the OOM killer killed in the cgroup so far."""
        self._oom_seen = self._oom_kills.read()
        self._oom_looked_at = time.monotonic()
        return self._oom_seen

    def recent_oom_kills(self, max_age: float = OOM_LOOK_AGE) -> int | None:
        """``oom_kills`` as of a look at most ``max_age`` seconds old. A look is a
        system call (4.6 µs on cgroup v1, 2% of a backend server's CPU time for a
        ``1+1``): too dear for every request. The count only grows."""
        if time.monotonic() - self._oom_looked_at >= max_age:
            return self.oom_kills()
        return self._oom_seen

    def pids_refused(self) -> int | None:
        """Forks the pids limit refused so far."""
        return self._pids_refused.read()

    def memory_limit(self) -> int | None:
        """The memory limit in bytes; None when unlimited or unknown."""
        return read_limit(self.files.memory_limit)

    def pids_limit(self) -> int | None:
        """The process (and thread) limit; None when unlimited or unknown."""
        return read_limit(self.files.pids_limit)

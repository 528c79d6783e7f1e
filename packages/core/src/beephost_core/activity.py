"""How long a backend has been idle, for whoever stops idle backends (the controller).

The executor counts requests in flight and notes when the last one ended; every
``REPORT_INTERVAL`` seconds it writes the idle seconds to a small file (``0`` while a
request runs). The backends' health checks print that file's number, Docker keeps
their output, and the controller reads it there: no port or socket of the backend is
needed, and a health check itself is no request.
"""

import contextlib
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

#: Seconds between two reports.
REPORT_INTERVAL = 1.0


class Activity:
    """Requests in flight and the end of the last one; ``report`` writes the file."""

    def __init__(self, path: str | None) -> None:
        self.path = Path(path) if path else None
        self._running = 0
        self._last = time.monotonic()

    @contextlib.contextmanager
    def request(self) -> Iterator[None]:
        """Count a request (or a streamed transfer) as activity while it runs."""
        self.begin()
        try:
            yield
        finally:
            self.end()

    def begin(self) -> None:
        """A request starts (``request`` without a generator: the executor's per-request
        path calls ``begin`` and ``end`` itself)."""
        self._running += 1

    def end(self) -> None:
        """A request that ``begin`` counted has ended."""
        self._running -= 1
        self._last = time.monotonic()

    def idle_seconds(self) -> float:
        return 0.0 if self._running else time.monotonic() - self._last

    def report(self) -> None:
        """Write the idle seconds (atomically: a reader never sees half a number)."""
        if self.path is None:
            return
        scratch = self.path.with_name(self.path.name + ".new")
        try:
            scratch.write_text(f"{self.idle_seconds():.0f}\n")
            os.replace(scratch, self.path)
        except OSError:
            pass  # a full or read-only /tmp: idleness is then unknown, never wrong


def idle_note(env_prefix: str, environ: Mapping[str, str] = os.environ) -> str:
    """`` idle=N``: what a health check prints of the seconds its server reports being
    idle (the ``<env_prefix>ACTIVITY_FILE``), read by the controller from the check's
    output; empty without a report."""
    wanted = f"{env_prefix}ACTIVITY_FILE".upper()
    path = {k.upper(): v for k, v in environ.items()}.get(wanted)
    try:
        return f" idle={int(Path(path).read_text())}" if path else ""
    except (OSError, ValueError):
        return ""

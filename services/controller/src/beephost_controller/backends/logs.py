"""A backend's logs: its sandbox's, or the tail kept when the sandbox was removed.

A stop on purpose (its idle timeout, its lifetime, a user's stop, a shutdown) removes
the sandbox and its logs with it: the stop first keeps the last ``KEPT_LINES``,
redacted, in the store. A stopped backend's logs are those, with a note saying so, or
``not_found`` if none were kept; never ``unavailable``, which tells a client to retry a
sandbox that is gone for good.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from beephost_controller.ports import (
    BackendEngine,
    ContainerEngineError,
    ContainerGone,
)
from beephost_controller.rows import BackendRow
from beephost_controller.store import SqliteStore
from beephost_protocol.errors import NotFound, Unavailable

logger = logging.getLogger(__name__)

#: Lines of a backend's logs kept at its stop (about 100 KiB for a chatty server).
KEPT_LINES = 1000


@dataclass(frozen=True)
class BackendLogs:
    """What logs need: the engine, the store, the redactor and a clock."""

    engine: BackendEngine
    store: SqliteStore
    redact: Callable[[str], str]
    clock: Callable[[], float]


def keep_tail(service: BackendLogs, row: BackendRow) -> None:
    """Keep the last lines of ``row``'s sandbox's logs before it is removed.

    Best effort: a sandbox already gone (a crash, an earlier stop cut short) has
    none, and a stop never fails for its logs.
    """
    try:
        text = service.engine.logs(row, KEPT_LINES)
    except ContainerEngineError as exc:
        logger.info("kept no logs of backend %s: %s", row.id, exc)
        return
    # The backend's own token first: a controller restarted since its start may not
    # have been told it.
    text = service.redact(text.replace(row.token, "[redacted]") if row.token else text)
    service.store.keep_logs(row.id, text, service.clock())


def read_logs(service: BackendLogs, row: BackendRow, tail: int) -> str:
    """The last ``tail`` lines of the backend's logs.

    Raises:
        NotFound: Its sandbox is gone and no logs were kept of it.
        Unavailable: The engine failed (asking again may help).
    """
    if row.status != "stopped":
        try:
            return service.engine.logs(row, tail)
        except ContainerGone:
            pass  # removed meanwhile (a stop under way), or lost: what was kept
        except ContainerEngineError as exc:
            raise Unavailable(f"no logs for {row.id}: {exc}") from exc
    kept = service.store.kept_logs(row.id)
    if kept is None:
        raise NotFound(
            f"backend {row.id} has no container any more ({row.status}"
            + (f", {row.reason}" if row.reason else "")
            + "): its logs are gone",
            {"backend": row.id, "status": row.status, "reason": row.reason},
        )
    text, kept_at = kept
    lines = text.splitlines(keepends=True)[-tail:]
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(kept_at))
    note = (
        f"[beep-host] backend {row.id} was stopped"
        + (f" ({row.reason})" if row.reason else "")
        + f": its last {len(lines)} line(s), kept at the stop ({when})\n"
    )
    return note + "".join(lines)

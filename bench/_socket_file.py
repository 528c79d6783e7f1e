"""The socket file of a bench server started as a script (``_floor_server.py``,
``_rpyc_server.py``). Standard library only: the servers may run under another
interpreter (plots.py's)."""

import contextlib
import os
import signal
from collections.abc import Iterator


@contextlib.contextmanager
def socket_file(path: str) -> Iterator[None]:
    """Serve at ``path`` in the block: a stale file is removed before it, the socket's
    after it; SIGTERM (the bench's stop) exits at once."""
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)

"""Hand back what a server's start-up left on the heap, once it is ready.

Imports leave garbage (cycles of typing and pydantic's schema building) and freed
blocks that glibc's malloc keeps for later: an idle pool member would hold them for
its whole life, counted against its container's memory limit. ``settle`` collects
the cycles, freezes what survives (later collections skip it), then asks glibc to
return its free pages to the kernel. Servers call ``settle_later`` once ready: not at
once, where it would hold up the first requests of a cold start.
"""

import asyncio
import ctypes
import functools
import gc
import logging
from collections.abc import Callable

logger = logging.getLogger(__name__)


#: Seconds after the server is ready.
SETTLE_DELAY = 2.0


def settle_later(delay: float = SETTLE_DELAY) -> asyncio.TimerHandle:
    """Run ``settle`` on the running loop ``delay`` seconds from now."""
    return asyncio.get_running_loop().call_later(delay, settle)


def settle() -> bool:
    """Collect, freeze and trim; returns whether glibc's ``malloc_trim`` ran.

    Also turns the garbage collector on: a server's ``main`` turns it off before its
    imports, which allocate a great deal and free little (collections while they ran
    cost a cold start 15-35 ms of CPU); everything they left is frozen here.
    """
    gc.collect()
    gc.freeze()
    gc.enable()
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None (musl, macOS: nothing to do)."""
    try:
        # The interpreter's own symbols, libc's among them (find_library would run
        # ldconfig in a subprocess).
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        logger.debug("no malloc_trim in this C library")
        return None
    return trim

"""A block of timed round trips: what a client's ``block(count)`` returns.

The clock brackets the request alone; the check of its result runs after the clock
stopped. The call through ``request`` costs tens of ns, under 0.1% of any round trip
that uses it; the eval floors, whose round trips are the shortest, keep their own loops.
"""

import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def timed(
    count: int, request: Callable[[], T], check: Callable[[T], None]
) -> list[int]:
    """The latencies in ns of ``count`` calls of ``request``; ``check`` raises on a
    wrong result."""
    clock = time.perf_counter_ns
    latencies = []
    for _ in range(count):
        started = clock()
        result = request()
        latencies.append(clock() - started)
        check(result)
    return latencies


async def atimed(
    count: int, request: Callable[[], Awaitable[T]], check: Callable[[T], None]
) -> list[int]:
    """Async twin of :func:`timed`."""
    clock = time.perf_counter_ns
    latencies = []
    for _ in range(count):
        started = clock()
        result = await request()
        latencies.append(clock() - started)
        check(result)
    return latencies

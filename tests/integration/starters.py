"""A fixture's ``start(**settings)`` for backends that each need a folder of their own."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

Server = TypeVar("Server")


@contextmanager
def numbered_starts(
    root: Path,
    python: str,
    launch: Callable[..., Server],
    stop: Callable[[Server], None],
) -> Iterator[Callable[..., Server]]:
    """``start(**settings)`` launches ``launch(folder, python, **settings)`` in a new
    numbered folder below ``root``; every server started stops at the end."""
    started: list[Server] = []

    def start(**settings: Any) -> Server:
        directory = root / str(len(started))
        directory.mkdir()
        server = launch(directory, python, **settings)
        started.append(server)
        return server

    yield start
    for server in started:
        stop(server)

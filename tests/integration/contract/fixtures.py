"""Fixtures of the transport contract suite; the test module binds them by name.

To run the same tests against other servers (containers, in tests/e2e), import the
test module's names and override ``backend_urls`` (and ``secured_backend_urls``,
``restartable_backend``) there; see docs in test_transport_contract.py.
"""

import contextlib
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import beephost_client as bc
from tests.integration.contract.servers import (
    TOKEN,
    TRANSPORTS,
    Backend,
    ServerProcess,
    ServerSet,
    down_url,
)
from tests.integration.contract.threaded import threaded

MODES = ("sync", "async")
COMBOS = [f"{transport}-{mode}" for transport in TRANSPORTS for mode in MODES]
# Finite everywhere, and short enough that a hung call fails the test quickly.
CLIENT_TIMEOUT = bc.Timeout(request=20.0, connect=5.0, grace=5.0)

Connect = Callable[..., Any]


@pytest.fixture(scope="session")
def server_set(env_python: str) -> Iterator[ServerSet]:
    servers = ServerSet(env_python)
    yield servers
    servers.close()


@pytest.fixture(scope="session")
def backend_urls(server_set: ServerSet) -> dict[str, Backend]:
    """``{transport: Backend(url, token)}``: the servers the contract runs against."""
    return {kind: server_set.start(kind).backend for kind in TRANSPORTS}


@pytest.fixture(scope="session")
def secured_backend_urls(server_set: ServerSet) -> dict[str, Backend]:
    """``{transport: Backend(url, token)}`` of servers that require their token."""
    return {kind: server_set.start(kind, TOKEN).backend for kind in TRANSPORTS}


@pytest.fixture
def restartable_backend(
    server_set: ServerSet, transport: str
) -> Iterator[ServerProcess]:
    """A dedicated server of this transport, with ``.backend`` and ``.restart()``."""
    server = server_set.start(transport)
    yield server
    server.stop()


@pytest.fixture
def unavailable_url(transport: str) -> Iterator[str]:
    """A URL of this transport where nothing listens."""
    directory = Path(tempfile.mkdtemp(prefix="bhd", dir="/tmp"))
    yield down_url(transport, directory)
    directory.rmdir()


@pytest.fixture(params=COMBOS)
def combo(request: pytest.FixtureRequest) -> tuple[str, str]:
    transport, mode = str(request.param).split("-")
    return transport, mode


@pytest.fixture
def transport(combo: tuple[str, str]) -> str:
    return combo[0]


@pytest.fixture
def mode(combo: tuple[str, str]) -> str:
    return combo[1]


@pytest.fixture
async def connect(mode: str) -> AsyncIterator[Connect]:
    """``connect(url, token=None, timeout=...)``: a client of this mode, closed after.

    The async mode returns an ``AsyncClient``; the sync mode a real ``Client`` behind
    the thread adapter (``threaded``), so the same async test code drives both.
    """
    async with contextlib.AsyncExitStack() as opened:

        def make(
            url: str, *, token: str | None = None, timeout: Any = CLIENT_TIMEOUT
        ) -> Any:
            if mode == "async":
                client: Any = bc.aconnect(url, token=token, timeout=timeout)
            else:
                client = threaded(bc.connect(url, token=token, timeout=timeout))
            opened.push_async_callback(client.aclose)
            return client

        yield make


@pytest.fixture
async def client(
    connect: Connect, backend_urls: dict[str, Backend], transport: str
) -> Any:
    backend = backend_urls[transport]
    return connect(backend.url, token=backend.token)

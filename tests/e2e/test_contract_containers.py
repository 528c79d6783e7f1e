"""The transport contract suite, unchanged, against the three backend containers.

The tests are tests/integration/test_transport_contract.py's own functions (star
import); only the fixtures that say where the servers are are overridden: http and grpc
through ports published on 127.0.0.1, pipe through a bind-mounted socket directory.
The containers run the images hardened (read-only root, tmpfs /tmp, no capabilities,
uid 10001) with the contract's limits and token.
"""

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.e2e.containers import (
    RunningBackend,
    docker,
    remove_container,
    socket_directory,
    start_backend,
    wait_ready,
)
from tests.e2e.session_fixtures import BuiltBackends
from tests.integration.contract.servers import (
    TOKEN,
    contract_settings,
)

# The contract's tests and fixtures, rebound here by name; the star is the documented
# way to reuse the suite (its __all__ lists the tests and fixtures).
from tests.integration.test_transport_contract import *  # noqa: F403
from tests.integration.test_transport_contract import Backend
from tests.ports import free_port

# An __all__ that lists no tests would make this module pass by running nothing.
if not [name for name in dir() if name.startswith("test_")]:
    raise ImportError("tests.integration.test_transport_contract exports no tests")

# The contract module's own pytestmark (anyio) came with the star import; extended here.
pytestmark = [pytest.mark.anyio, pytest.mark.docker, pytest.mark.e2e]  # type: ignore[assignment]

#: Contract transport name -> backend kind (the gRPC backend is "rpc").
KINDS = {"pipe": "pipe", "http": "http", "grpc": "rpc"}


def start_contract_backend(
    stack: contextlib.ExitStack,
    backend_images: BuiltBackends,
    docker_cli: str,
    kind: str,
    **options: Any,
) -> RunningBackend:
    """A container of ``kind`` with the contract's token and settings (a pipe one
    gets a socket directory that ``stack`` removes)."""
    socket_dir = stack.enter_context(socket_directory()) if kind == "pipe" else None
    return start_backend(
        docker_cli,
        kind,
        backend_images.images[kind].tag,
        backend_images.labels,
        socket_dir=socket_dir,
        token=TOKEN,
        env=contract_settings(kind),
        **options,
    )


@pytest.fixture(scope="module")
def contract_containers(
    backend_images: BuiltBackends, docker_cli: str
) -> Iterator[dict[str, RunningBackend]]:
    """One container per transport for the whole module, healthy via HEALTHCHECK."""
    running: dict[str, RunningBackend] = {}
    with contextlib.ExitStack() as stack:
        try:
            for transport, kind in KINDS.items():
                running[transport] = start_contract_backend(
                    stack, backend_images, docker_cli, kind
                )
            yield running
        finally:
            for backend in running.values():
                remove_container(docker_cli, backend.container)


# Overrides of the contract's fixtures, which the star import bound: hence no-redef.
@pytest.fixture(scope="module")  # type: ignore[no-redef]
def backend_urls(
    contract_containers: dict[str, RunningBackend],
) -> dict[str, Backend]:
    """``{transport: Backend(url, token)}`` of the containers."""
    return {
        transport: Backend(backend.url, backend.token)
        for transport, backend in contract_containers.items()
    }


@pytest.fixture(scope="module")  # type: ignore[no-redef]
def secured_backend_urls(
    backend_urls: dict[str, Backend],
) -> dict[str, Backend]:
    """The same containers: every one of them requires the contract's token."""
    return backend_urls


@dataclass
class RestartableContainer:
    """A dedicated container with ``.backend`` and ``.restart()`` (``docker restart``)."""

    docker_cli: str
    running: RunningBackend

    @property
    def backend(self) -> Backend:
        return Backend(self.running.url, self.running.token)

    def restart(self) -> None:
        # SIGTERM, the drain (DRAIN_TIMEOUT=1), then the same container starts again:
        # same socket directory, same published port.
        docker(
            self.docker_cli, "restart", "-t", "10", self.running.container, timeout=60
        )
        wait_ready(self.docker_cli, self.running.container, self.running.kind)


@pytest.fixture  # type: ignore[no-redef]
def restartable_backend(
    backend_images: BuiltBackends, docker_cli: str, transport: str
) -> Iterator[RestartableContainer]:
    """A container of this transport of its own, on an address a restart keeps."""
    kind = KINDS[transport]
    with contextlib.ExitStack() as stack:
        running = start_contract_backend(
            stack,
            backend_images,
            docker_cli,
            kind,
            host_port=None if kind == "pipe" else free_port(),
            wait="ready",
        )
        try:
            yield RestartableContainer(docker_cli, running)
        finally:
            remove_container(docker_cli, running.container)

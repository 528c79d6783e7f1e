"""The SDK keeps its lease alive while it holds objects in ``default``, and only then.

Against real HTTP (uvicorn in a thread) and gRPC (a process) backends with a short lease
TTL: a client process killed with SIGKILL, and a client dropped without closing, leave
nothing behind in ``default`` once their lease expired; a live client keeps its objects
past several TTLs; closing releases at once. Time passing is observed through witness
objects created under leases nobody renews (they disappear), never by fixed sleeps.
"""

import gc
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

import beephost_client as bc
from beephost_client._config import make_async_transport, make_transport
from beephost_client._timeout import Timeout
from beephost_protocol import Evaluate
from beephost_protocol.errors import Unavailable
from tests.integration.http.support import ThreadServer, settings_for
from tests.integration.rpc.support import start_rpc_process

# Renewals come every third of it: a test process the machine stalls for over a second
# still keeps its lease.
LEASE_TTL = 2.0
BOUND = 30.0  # seconds any wait below may take at most
TIMEOUT = Timeout(request=10)

CHILD = """
import sys
import beephost_client as bc

client = bc.connect(sys.argv[1])
kept = [client.evaluate("object()"), client.create("collections.OrderedDict")]
print(" ".join(o.handle.id for o in kept), flush=True)
sys.stdin.read()  # until killed
"""


@pytest.fixture(params=["http", "grpc"])
def url(
    request: pytest.FixtureRequest, env_python: str, short_tmp: Path
) -> Iterator[str]:
    if request.param == "http":
        server = ThreadServer(settings_for(env_python, lease_ttl=LEASE_TTL)).start()
        yield f"http://127.0.0.1:{server.port}"
        server.stop()
    else:
        process = start_rpc_process(short_tmp, env_python, lease_ttl=LEASE_TTL)
        _wait_ready(f"grpc://{process.target}")
        yield f"grpc://{process.target}"
        process.stop()


def _wait_ready(url: str) -> None:
    """Poll (bounded) until the backend's executor has started: it listens before."""
    deadline = time.monotonic() + BOUND
    with bc.connect(url, timeout=TIMEOUT) as client:
        while True:
            try:
                client.sessions()
                return
            except Unavailable:
                assert time.monotonic() < deadline, "the backend never became ready"
                time.sleep(0.05)  # poll interval


def _handles(url: str) -> set[str]:
    with bc.connect(url, timeout=TIMEOUT) as observer:  # holds nothing: renews nothing
        return {handle.id for handle in observer.objects()}


def _witness(url: str) -> str:
    """An object in `default` under a lease of its own that nobody renews."""
    transport = make_transport(url, token=None, timeout=TIMEOUT)
    try:
        result = transport.handle(Evaluate(expression="object()"), timeout=10)
    finally:
        transport.close()
    handle: str = result["value"]["$handle"]["id"]
    return handle


def _wait_gone(url: str, handles: set[str]) -> None:
    deadline = time.monotonic() + BOUND
    while _handles(url) & handles:
        assert time.monotonic() < deadline, f"{handles} were never released"
        time.sleep(0.05)  # poll interval


def test_a_killed_client_keeps_its_objects_while_alive_and_loses_them_dead(
    url: str,
) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", CHILD, url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    ) as child:
        try:
            assert child.stdout is not None
            kept = set(child.stdout.readline().decode().split())
            assert len(kept) == 2
            for _ in range(2):  # alive: its thread renews past whole TTLs
                witness = _witness(url)
                _wait_gone(url, {witness})
                assert kept <= _handles(url)
        finally:
            child.kill()  # SIGKILL: no close, no release

    _wait_gone(url, kept)


def test_closing_the_client_releases_its_objects_at_once(url: str) -> None:
    client = bc.connect(url, timeout=TIMEOUT)
    kept = {
        client.evaluate("object()").handle.id,
        client.evaluate("object()").handle.id,
    }
    plain = _witness(url)
    client.close()
    left = _handles(url)
    assert not kept & left
    assert plain in left


async def _ahandles(url: str) -> set[str]:
    async with bc.aconnect(url, timeout=TIMEOUT) as observer:
        return {handle.id for handle in await observer.objects()}


async def _await_gone(url: str, handles: set[str]) -> None:
    with anyio.fail_after(BOUND):
        while await _ahandles(url) & handles:  # noqa: ASYNC110 - polls the server
            await anyio.sleep(0.05)


async def _awitness(url: str) -> str:
    transport = make_async_transport(url, token=None, timeout=TIMEOUT)
    try:
        result = await transport.handle_async(
            Evaluate(expression="object()"), timeout=10
        )
    finally:
        await transport.aclose()
    handle: str = result["value"]["$handle"]["id"]
    return handle


@pytest.mark.anyio
async def test_an_async_client_keeps_its_objects_until_dropped(url: str) -> None:
    client = bc.aconnect(url, timeout=TIMEOUT)
    kept = [
        await client.evaluate("object()"),
        await client.create("fractions.Fraction", 1, 3),
    ]
    ids = {o.handle.id for o in kept}
    for _ in range(2):  # alive: its task renews past whole TTLs
        await _await_gone(url, {await _awitness(url)})
        assert ids <= await _ahandles(url)

    # Dropped without closing: once its objects are gone, nothing renews the lease.
    connections = client._transport  # closed below only, for the ResourceWarning
    del kept, client
    gc.collect()
    await _await_gone(url, ids)
    await connections.aclose()

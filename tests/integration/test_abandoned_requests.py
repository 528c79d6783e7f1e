"""A request whose client disconnects or cancels is interrupted at once (issue 11, item 3).

Against real backend processes of every transport (the contract suite's servers): the
client starts code that would run for 120 s, then cancels the call and closes its
connection. Another client then uses the same session: it is free again with its state
kept, and the abandoned code was interrupted, not finished.
"""

import functools
from pathlib import Path

import anyio
import pytest

import beephost_client as bc
from tests.integration.contract.servers import TRANSPORTS, Backend

pytestmark = pytest.mark.anyio


GUARD = 30  # seconds: fails a request stuck behind a 120 s one, passes a free session
TIMEOUT = bc.Timeout(request=180.0, connect=5.0, grace=5.0)


async def _abandon(backend: Backend, session_id: str, code: str, started: Path) -> None:
    """Run ``code`` from a client of its own; cancel it once it runs; close the client."""
    client = bc.aconnect(backend.url, token=backend.token, timeout=TIMEOUT)
    try:
        session = client.session(session_id=session_id)
        async with anyio.create_task_group() as group:
            group.start_soon(functools.partial(session.execute, code, timeout=120))
            with anyio.fail_after(GUARD):
                while not await anyio.Path(started).exists():  # noqa: ASYNC110 - the code touches it
                    await anyio.sleep(0.01)
            group.cancel_scope.cancel()
    finally:
        await client.aclose()


def _code(started: Path) -> str:
    """Code that signals it runs from inside its ``try``: an interrupt that came between
    the signal and the ``try`` would be raised outside it, and ``how`` never set."""
    return (
        "import pathlib, time\nhow = None\ntry:\n"
        f"    pathlib.Path({str(started)!r}).touch()\n    time.sleep(120)\n"
        "except KeyboardInterrupt:\n    how = 'interrupted'\n    raise\nfinished = True"
    )


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_an_abandoned_request_is_interrupted_and_frees_its_session(
    backend_urls: dict[str, Backend], transport: str, tmp_path: Path
) -> None:
    backend = backend_urls[transport]
    started = tmp_path / "started"
    async with (
        bc.aconnect(backend.url, token=backend.token, timeout=TIMEOUT) as other,
        other.session() as session,
    ):
        await session.execute("kept = 'state kept'\nhow = None")
        await _abandon(backend, session.id, _code(started), started)
        with anyio.fail_after(GUARD):
            value = await session.evaluate(
                "(kept, how, 'finished' in globals())", timeout=120
            )
        assert value == ("state kept", "interrupted", False)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_an_abandoned_stream_is_interrupted(
    backend_urls: dict[str, Backend], transport: str
) -> None:
    backend = backend_urls[transport]
    client = bc.aconnect(backend.url, token=backend.token, timeout=TIMEOUT)
    async with (
        bc.aconnect(backend.url, token=backend.token, timeout=TIMEOUT) as other,
        other.session() as session,
    ):
        code = (
            "import time\ntry:\n    print('running', flush=True)\n    time.sleep(120)\n"
            "except KeyboardInterrupt:\n    how = 'interrupted'\n    raise"
        )
        try:
            mine = client.session(session_id=session.id)
            async with mine.stream(code, timeout=120) as chunks:
                async for chunk in chunks:
                    assert chunk.data == "running\n"
                    break  # leave the stream with the code running
        finally:
            await client.aclose()
        with anyio.fail_after(GUARD):
            value = await session.evaluate("how", timeout=120)
        assert value == "interrupted"

"""Hostile code behind an egress allow-list, in each backend type: every escape of
tests/e2e/egress_escapes.py is refused with its own error, fast, and the backend still
serves afterwards. Rows of the hostile-code table (area "hostile code").

The world is tests/e2e/test_egress.py's: a fake internet (tests/e2e/fake_internet.py)
and a controller whose egress proxy sits on it; one environment whose allow-list names
the fake internet's servers (and the rebinding names); one backend of each type on it,
each the others' neighbour (another sandbox whose port must be out of reach).
"""

import time
import urllib.parse
from collections.abc import Iterator

import pytest

from beephost_client import Client
from beephost_client.controller import Backend, ControllerClient
from tests.e2e import egress_fixtures
from tests.e2e.controller_process import ControllerProcess
from tests.e2e.egress_escapes import ESCAPES, FAST, IDS, PRELUDE, Escape, Where
from tests.e2e.fake_internet import (
    ALLOWED,
    OTHER,
    REBINDING,
    FakeInternet,
)
from tests.reliability.summary import Case

pytestmark = pytest.mark.docker

AREA = "hostile code"
KINDS = ("pipe", "http", "rpc")
TRANSPORT = {"pipe": "pipe", "http": "http", "rpc": "grpc"}
#: Whose port each type's sandbox tries: another type's.
NEIGHBOUR = {"pipe": "http", "http": "rpc", "rpc": "http"}
ENVIRONMENT = "hostile-egress"


internet = egress_fixtures.internet
controller = egress_fixtures.controller


@pytest.fixture(scope="module")
def egress_backends(api: ControllerClient) -> Iterator[dict[str, Backend]]:
    """The environment (``requests`` in it) and one backend per type, started at once."""
    allow = [{"host": name} for name in (ALLOWED, OTHER, *REBINDING)]
    env = api.ensure_environment(
        ENVIRONMENT, requirements=["requests"], egress={"allow": allow}
    )
    if env.job_id is not None:
        job = api.wait_job(env.job_id, timeout=900)
        assert job.succeeded, job.error
    started: dict[str, Backend] = {}
    try:
        for kind in KINDS:
            started[kind] = api.start_backend(ENVIRONMENT, kind)  # type: ignore[arg-type]
        for kind, backend in started.items():
            started[kind] = api.wait_backend(backend.id, timeout=120)
            assert started[kind].status == "ready"
        yield started
    finally:
        for backend in started.values():
            api.stop_backend(backend.id)


@pytest.fixture(scope="module", params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


@pytest.fixture(scope="module")
def sandbox(
    api: ControllerClient, egress_backends: dict[str, Backend], kind: str
) -> Iterator[tuple[Backend, Client]]:
    backend = egress_backends[kind]
    with api.connect_backend(backend.id) as client:
        yield backend, client


@pytest.fixture(scope="module")
def where(
    controller: ControllerProcess,
    internet: FakeInternet,
    egress_backends: dict[str, Backend],
    kind: str,
) -> Where:
    neighbour = egress_backends[NEIGHBOUR[kind]]
    port = urllib.parse.urlsplit(neighbour.endpoint or "").port
    assert port is not None
    return Where(
        api=internet.addresses[ALLOWED],
        gateway=internet.gateway,
        private=internet.private_address,
        controller_port=controller.port,
        neighbour_port=port,
    )


@pytest.mark.parametrize("escape", ESCAPES, ids=IDS)
def test_an_escape_is_refused_and_the_backend_still_serves(
    api: ControllerClient,
    sandbox: tuple[Backend, Client],
    where: Where,
    kind: str,
    escape: Escape,
    reliability_case: Case,
) -> None:
    backend, client = sandbox
    reliability_case.area = AREA
    reliability_case.transport = TRANSPORT[kind]
    restarts = api.backend(backend.id).restarts
    code, expect = escape.render(where)
    started = time.monotonic()
    answer = client.execute(PRELUDE + "\n" + code, timeout=60).value
    assert isinstance(answer, dict)
    outcome = str(answer["outcome"])
    reliability_case.case = (
        f"egress: {escape.case} -> {outcome[:120]} after {answer['seconds']} s"
    )
    assert expect.search(outcome), f"{outcome!r} does not match {expect.pattern!r}"
    assert answer["seconds"] < FAST
    assert time.monotonic() - started < FAST + 20
    # Still serves, never restarted for it.
    assert client.evaluate("1 + 1") == 2
    now = api.backend(backend.id)
    if now.restarts != restarts or now.status != "ready":
        reliability_case.lost = f"the container restarted ({now.status})"
        pytest.fail(f"{kind}: {reliability_case.lost}")

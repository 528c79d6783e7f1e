"""Leases on HTTP: objects a client created in ``default`` go when its lease does.

Against a real backend (uvicorn in a thread) with a short lease TTL. A client that dies
without releasing is a client that stops sending requests under its lease: nothing else
tells the server. Time passing is observed through a witness lease that is left to
expire (its objects disappear), never through a fixed sleep.
"""

import secrets
import time
import urllib.parse
from collections.abc import Iterator

import pytest

from tests.integration.http.conftest import StartServer
from tests.integration.http.support import Client, ThreadServer

LEASE_TTL = 0.5
# Where a lease must survive: the margin for a test process the machine stalls.
LONG_LEASE_TTL = 2.0


def _lease() -> str:
    return secrets.token_urlsafe(16)


@pytest.fixture
def server(start_server: StartServer) -> ThreadServer:
    return start_server(lease_ttl=LEASE_TTL, max_handles=4)


@pytest.fixture
def client(server: ThreadServer) -> Iterator[Client]:
    client = server.client()
    yield client
    client.close()


@pytest.fixture
def slow_client(start_server: StartServer) -> Iterator[Client]:
    client = start_server(lease_ttl=LONG_LEASE_TTL).client()
    yield client
    client.close()


def _create(client: Client, lease: str | None, expression: str = "object()") -> str:
    headers = {"Beephost-Lease": lease} if lease else {}
    reply = client.post("/api/eval", {"expression": expression}, headers=headers)
    assert reply.status == 200, reply.body
    handle: str = reply.json["value"]["$handle"]["id"]
    return handle


def _default_handles(client: Client) -> set[str]:
    listing = client.ok("GET", "/api/sessions/default/objects")
    return {handle["id"] for handle in listing["handles"]}


def _wait_released(
    client: Client, handles: set[str], keep_alive: str | None = None
) -> None:
    """Poll (bounded) until ``handles`` are gone, renewing ``keep_alive`` meanwhile."""
    deadline = time.monotonic() + 15
    while _default_handles(client) & handles:
        assert time.monotonic() < deadline, "the lease's objects were never released"
        if keep_alive is not None:
            client.ok("PUT", f"/api/leases/{keep_alive}")
        time.sleep(0.02)  # poll interval


def test_an_abandoned_lease_releases_its_objects_and_frees_the_quota(
    client: Client,
) -> None:
    lease = _lease()
    first = _create(client, lease)  # the fast lane
    reply = client.post(
        "/api/sessions/default/objects",
        {"target": "collections.OrderedDict"},
        headers={"Beephost-Lease": lease},
    )
    assert reply.status == 201, reply.body
    second = reply.json["value"]["$handle"]["id"]
    others = {_create(client, None), _create(client, None)}
    full = client.post("/api/eval", {"expression": "object()"})
    assert full.status == 429
    assert full.error["code"] == "quota_exceeded"

    _wait_released(client, {first, second})  # nobody renews: the client is gone

    assert _default_handles(client) == others  # objects without a lease stay
    gone = client.get(f"/api/sessions/default/objects/{first}/attributes/__class__")
    assert gone.status == 404
    assert gone.error["code"] == "not_found"
    _create(client, None)  # the quota is free again


def test_a_renewed_lease_keeps_its_objects_past_several_ttls(
    slow_client: Client,
) -> None:
    client = slow_client
    lease = _lease()
    kept = _create(client, lease)
    for _ in range(3):  # each witness expiring proves a whole TTL passed
        witness = _create(client, _lease())
        _wait_released(client, {witness}, keep_alive=lease)
    renewed = client.ok("PUT", f"/api/leases/{lease}")
    assert renewed == {"lease": lease, "ttl": LONG_LEASE_TTL, "handles": 1}
    assert kept in _default_handles(client)


def test_any_request_under_the_lease_renews_it(slow_client: Client) -> None:
    client = slow_client
    lease = _lease()
    kept = _create(client, lease)
    for _ in range(3):
        witness = _create(client, _lease())
        deadline = time.monotonic() + 15
        while witness in _default_handles(client):
            assert time.monotonic() < deadline
            reply = client.post(
                "/api/exec", {"code": "pass"}, headers={"Beephost-Lease": lease}
            )
            assert reply.status == 200, reply.body
            time.sleep(0.02)  # poll interval
    assert kept in _default_handles(client)


def test_releasing_a_lease_releases_its_objects_at_once(client: Client) -> None:
    lease = _lease()
    _create(client, lease)
    _create(client, lease)
    other = _create(client, None)

    reply = client.request("DELETE", f"/api/leases/{lease}")

    assert reply.status == 200, reply.body
    assert reply.json == {"lease": lease, "released": 2}
    assert _default_handles(client) == {other}
    again = client.request("DELETE", f"/api/leases/{lease}")
    assert again.json == {"lease": lease, "released": 0}


def test_objects_released_by_hand_are_not_released_again(client: Client) -> None:
    lease = _lease()
    handle = _create(client, lease)
    client.ok("POST", "/api/sessions/default/objects/release", {"handles": [handle]})
    assert client.request("DELETE", f"/api/leases/{lease}").json["released"] == 0


def test_objects_without_a_lease_outlive_an_expired_lease(client: Client) -> None:
    plain = _create(client, None)
    witness = _create(client, _lease())
    _wait_released(client, {witness})
    assert plain in _default_handles(client)


@pytest.mark.parametrize("path", ["/api/eval", "/api/sessions/default/objects"])
@pytest.mark.parametrize(
    "lease", ["short", "x" * 129, "has space in it 0123", "é" * 20]
)
def test_a_malformed_lease_is_an_invalid_request(
    client: Client, path: str, lease: str
) -> None:
    body = {"expression": "object()"} if path == "/api/eval" else {"target": "object"}
    headers = {"Beephost-Lease": lease}
    reply = client.request("POST", path, body, headers=headers)
    assert reply.status == 400, reply.body
    assert reply.error["code"] == "invalid_request"
    assert "lease" in reply.error["message"]
    renew = client.request("PUT", f"/api/leases/{urllib.parse.quote(lease)}")
    assert renew.status == 400
    assert renew.error["code"] == "invalid_request"
    assert client.eval("1 + 1") == 2  # the server keeps serving


def test_the_openapi_document_names_the_lease_header(client: Client) -> None:
    schema = client.ok("GET", "/openapi.json")
    evaluate = schema["paths"]["/api/eval"]["post"]
    assert "Beephost-Lease" in {p["name"] for p in evaluate["parameters"]}
    assert set(schema["paths"]["/api/leases/{lease}"]) == {"put", "delete"}

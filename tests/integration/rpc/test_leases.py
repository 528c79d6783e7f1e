"""Leases on gRPC: handles a client created in ``default`` go when its lease does.

A real grpc.aio server on loopback with a short lease TTL. The lease travels as
``beephost-lease`` metadata; time passing is observed through a witness lease that is
left to expire (its handles disappear), never through a fixed sleep.
"""

from __future__ import annotations  # the stubs' async types exist only in .pyi

import json
import secrets
from typing import TYPE_CHECKING

import anyio
import grpc
import pytest

from beephost_pb.exec.v1 import exec_pb2 as pb
from beephost_pb.exec.v1 import exec_pb2_grpc
from beephost_protocol.errors import InvalidRequest, NotFound, QuotaExceeded
from tests.integration.rpc.support import CALL_TIMEOUT as T
from tests.integration.rpc.support import StartBackend, rpc_error

pytestmark = pytest.mark.anyio

if TYPE_CHECKING:
    Stub = exec_pb2_grpc.ExecutorAsyncStub

LEASE_TTL = 0.5
LONG_LEASE_TTL = 2.0  # where a lease must survive: margin for a stalled test process


def _lease() -> str:
    return secrets.token_urlsafe(16)


def _with(lease: str | None) -> tuple[tuple[str, str], ...]:
    return (("beephost-lease", lease),) if lease else ()


async def _create(stub: Stub, lease: str | None) -> str:
    reply = await stub.Evaluate(
        pb.EvaluateRequest(expression="object()"), timeout=T, metadata=_with(lease)
    )
    handle: str = json.loads(reply.value_json)["$handle"]["id"]
    return handle


async def _handles(stub: Stub) -> set[str]:
    reply = await stub.ListObjects(pb.SessionRef(), timeout=T)
    return {h.id for h in reply.handles}


async def _wait_released(
    stub: Stub, handles: set[str], keep_alive: str | None = None
) -> None:
    """Poll (bounded) until ``handles`` are gone, renewing ``keep_alive`` meanwhile."""
    with anyio.fail_after(15):
        while await _handles(stub) & handles:
            if keep_alive is not None:
                await stub.RenewLease(pb.LeaseRef(lease=keep_alive), timeout=T)
            await anyio.sleep(0.02)  # poll interval


async def test_an_abandoned_lease_releases_its_handles_and_frees_the_quota(
    start_backend: StartBackend,
) -> None:
    stub = (await start_backend(lease_ttl=LEASE_TTL, max_handles=3)).stub()
    lease = _lease()
    mine = {await _create(stub, lease), await _create(stub, lease)}
    other = await _create(stub, None)
    code, error = await rpc_error(
        stub.Evaluate(pb.EvaluateRequest(expression="object()"), timeout=T)
    )
    assert code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert isinstance(error, QuotaExceeded)

    await _wait_released(stub, mine)  # nobody renews: the client is gone

    assert await _handles(stub) == {other}  # handles without a lease stay
    gone = pb.GetAttributeRequest(handle=min(mine), name="__class__")
    code, error = await rpc_error(stub.GetAttribute(gone, timeout=T))
    assert isinstance(error, NotFound)
    await _create(stub, None)  # the quota is free again


async def test_a_renewed_lease_keeps_its_handles_past_several_ttls(
    start_backend: StartBackend,
) -> None:
    stub = (await start_backend(lease_ttl=LONG_LEASE_TTL)).stub()
    lease = _lease()
    kept = await _create(stub, lease)
    for _ in range(3):  # each witness expiring proves a whole TTL passed
        witness = await _create(stub, _lease())
        await _wait_released(stub, {witness}, keep_alive=lease)
    renewed = await stub.RenewLease(pb.LeaseRef(lease=lease), timeout=T)
    assert (renewed.lease, renewed.ttl, renewed.handles) == (lease, LONG_LEASE_TTL, 1)
    assert kept in await _handles(stub)


async def test_releasing_a_lease_releases_its_handles_at_once(
    start_backend: StartBackend,
) -> None:
    stub = (await start_backend(lease_ttl=LONG_LEASE_TTL)).stub()
    lease = _lease()
    await _create(stub, lease)
    created = pb.CreateObjectRequest(target="collections.OrderedDict")
    await stub.CreateObject(created, timeout=T, metadata=_with(lease))
    other = await _create(stub, None)

    released = await stub.ReleaseLease(pb.LeaseRef(lease=lease), timeout=T)

    assert (released.lease, released.released) == (lease, 2)
    assert await _handles(stub) == {other}
    again = await stub.ReleaseLease(pb.LeaseRef(lease=lease), timeout=T)
    assert again.released == 0


@pytest.mark.parametrize("lease", ["short", "x" * 129, "has space in it 0123"])
async def test_a_malformed_lease_is_invalid_argument(
    start_backend: StartBackend, lease: str
) -> None:
    stub = (await start_backend(lease_ttl=LEASE_TTL)).stub()
    request = pb.EvaluateRequest(expression="object()")
    code, error = await rpc_error(
        stub.Evaluate(request, timeout=T, metadata=_with(lease))
    )
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert isinstance(error, InvalidRequest)
    code, error = await rpc_error(stub.RenewLease(pb.LeaseRef(lease=lease), timeout=T))
    assert isinstance(error, InvalidRequest)
    twice = (("beephost-lease", _lease()), ("beephost-lease", _lease()))
    code, error = await rpc_error(stub.Evaluate(request, timeout=T, metadata=twice))
    assert isinstance(error, InvalidRequest)
    assert not await _handles(stub)  # nothing was created

"""The gRPC transport's pure parts: targets, deadlines and the status mapping."""

from typing import Any

import grpc
import pytest

import beephost_client as bc
from beephost_client._transports import grpc as grpc_transport
from beephost_protocol import Evaluate, SessionList, pb_codec


class FakeRpcError(grpc.RpcError):
    """The three methods of a failed call that the mapping reads."""

    def __init__(
        self, code: grpc.StatusCode, details: str = "", metadata: Any = ()
    ) -> None:
        self._code = code
        self._details = details
        self._metadata = metadata

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self) -> Any:
        return self._metadata


def test_targets() -> None:
    assert grpc_transport.target_of("grpc://host:1234") == ("host:1234", False)
    assert grpc_transport.target_of("grpc://host") == ("host:50051", False)
    assert grpc_transport.target_of("grpcs://host") == ("host:443", True)
    assert grpc_transport.target_of("grpc://[::1]:5") == ("[::1]:5", False)
    with pytest.raises(ValueError, match="grpc"):
        grpc_transport.target_of("http://host")


def test_every_call_has_a_deadline() -> None:
    auth = [("authorization", "Bearer t")]
    options = grpc_transport.call_options
    # The command's deadline travels as metadata; the call waits the client's wait.
    assert options(Evaluate(expression="1", timeout=3.0), 8.0, auth) == (
        8.0,
        [*auth, ("beephost-timeout", "3.0")],
    )
    assert options(Evaluate(expression="1", timeout=9.0), 8.0, auth)[0] == 9.0
    assert options(Evaluate(expression="1"), 8.0, auth) == (8.0, auth)
    assert options(SessionList(), 8.0, ()) == (8.0, [])


def test_the_beephost_error_metadata_wins() -> None:
    text = pb_codec.encode_error(bc.QuotaExceeded("too many", {"limit": 3}))
    error = FakeRpcError(
        grpc.StatusCode.RESOURCE_EXHAUSTED, "x", ((pb_codec.ERROR_METADATA_KEY, text),)
    )
    mapped = grpc_transport.map_error(error, "t")
    assert type(mapped) is bc.QuotaExceeded
    assert mapped.data == {"limit": 3}


@pytest.mark.parametrize(
    ("code", "details", "expected"),
    [
        (grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded", bc.ExecutionTimeout),
        (
            grpc.StatusCode.UNAVAILABLE,
            "failed to connect to all addresses",
            bc.ConnectError,
        ),
        (grpc.StatusCode.UNAVAILABLE, "Socket closed", bc.ConnectionLost),
        (grpc.StatusCode.UNAUTHENTICATED, "", bc.Unauthorized),
        (
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "Received message larger than max",
            bc.TooLarge,
        ),
        (grpc.StatusCode.INTERNAL, "boom", bc.BeepHostError),
    ],
)
def test_a_bare_status_maps_by_the_table(
    code: grpc.StatusCode, details: str, expected: type[bc.BeepHostError]
) -> None:
    mapped = grpc_transport.map_error(FakeRpcError(code, details), "host:1")
    assert type(mapped) is expected

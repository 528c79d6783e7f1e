"""The SDK's renewal policy: three renewals per TTL; stop when the server has no leases."""

import re

import pytest

from beephost_client import _base
from beephost_client._exceptions import BadReply, ConnectError, ConnectionLost
from beephost_client._transports.base import new_lease
from beephost_protocol.errors import (
    BeepHostError,
    ExecutionTimeout,
    NotFound,
    Unauthorized,
    Unavailable,
)


def test_renewals_come_three_times_per_ttl_and_not_too_often() -> None:
    assert _base.renewal_interval({"lease": "x", "ttl": 60.0, "handles": 1}) == 20.0
    short = {"lease": "x", "ttl": 0.1, "handles": 0}
    assert _base.renewal_interval(short) == _base.MIN_RENEWAL_INTERVAL


def test_a_malformed_renewal_is_bad_reply_and_stops_the_renewals() -> None:
    with pytest.raises(BadReply) as caught:
        _base.renewal_interval({"ttl": "soon"})
    assert _base.renewal_failed(caught.value, 20.0) is None


@pytest.mark.parametrize(
    "error",
    [ConnectError("x"), ConnectionLost("x"), Unavailable("x"), ExecutionTimeout("x")],
)
def test_a_passing_failure_is_retried_soon(error: BeepHostError) -> None:
    assert _base.renewal_failed(error, None) == _base.RENEWAL_RETRY
    assert _base.renewal_failed(error, 0.2) == 0.2


@pytest.mark.parametrize("error", [NotFound("no route"), Unauthorized("x")])
def test_a_server_without_leases_stops_the_renewals(error: BeepHostError) -> None:
    assert _base.renewal_failed(error, 20.0) is None


def test_new_leases_are_well_formed_and_distinct() -> None:
    leases = {new_lease() for _ in range(100)}
    assert len(leases) == 100
    for lease in leases:
        assert re.fullmatch(r"[A-Za-z0-9_-]{16,128}", lease)  # http.md, "Leases"

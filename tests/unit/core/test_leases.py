"""Leases keep time without I/O: ids are checked, and an unused lease expires once."""

import pytest

from beephost_core.leases import Leases, check_lease
from beephost_protocol.errors import InvalidRequest


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_lease_expires_ttl_after_its_last_use_and_only_once() -> None:
    clock = Clock()
    leases = Leases(10.0, clock)
    leases.touch("a" * 16)
    leases.touch("b" * 16)
    clock.now += 6
    leases.touch("b" * 16)  # renewed
    clock.now += 5
    assert leases.expired() == ["a" * 16]
    assert leases.expired() == []
    clock.now += 6
    assert leases.expired() == ["b" * 16]


def test_a_forgotten_lease_never_expires() -> None:
    clock = Clock()
    leases = Leases(1.0, clock)
    leases.touch("a" * 16)
    leases.forget("a" * 16)
    leases.forget("never-seen-0123456")
    clock.now += 5
    assert leases.expired() == []


@pytest.mark.parametrize("lease", ["A-z_0123456789abc", "x" * 128, "0123456789abcdef"])
def test_well_formed_ids_pass(lease: str) -> None:
    assert check_lease(lease) == lease


@pytest.mark.parametrize(
    "lease",
    ["", "short", "x" * 129, "with space 0123456", "é" * 16, "a/b" * 8, "a\n" * 9],
)
def test_malformed_ids_are_invalid_requests(lease: str) -> None:
    with pytest.raises(InvalidRequest, match="lease id"):
        check_lease(lease)

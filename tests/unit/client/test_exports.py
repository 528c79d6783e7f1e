"""The public surface is explicit (R8): __all__ is pinned (surfaces/beephost_client.txt)
and every name exists."""

import types

import beephost_client
from tests.unit.client.support import surface_change


def test_all_is_pinned() -> None:
    change = surface_change(beephost_client)
    assert not change, change


def test_a_changed_surface_names_what_changed() -> None:
    changed = types.ModuleType("beephost_client")
    names = [n for n in beephost_client.__all__ if n != "connect"] + ["Extra"]
    vars(changed)["__all__"] = names
    change = surface_change(changed)
    assert "added to __all__: Extra;" in change
    assert "gone from __all__: connect." in change
    assert surface_change(beephost_client) == ""


def test_every_name_resolves() -> None:
    for name in beephost_client.__all__:
        assert getattr(beephost_client, name) is not None


def test_errors_are_the_protocols_own_classes() -> None:
    import beephost_protocol

    for name in (
        "BeepHostError",
        "Conflict",
        "ExecutionFailed",
        "Unavailable",
        "Unauthorized",
    ):
        assert getattr(beephost_client, name) is getattr(beephost_protocol, name)
    assert issubclass(beephost_client.ConnectError, beephost_client.Unavailable)
    assert issubclass(beephost_client.ConnectionLost, beephost_client.Unavailable)


def test_public_api_is_documented() -> None:
    for name in beephost_client.__all__:
        obj = getattr(beephost_client, name)
        if isinstance(obj, type) or callable(obj):
            assert obj.__doc__, name

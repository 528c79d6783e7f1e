"""The URL scheme table and the Timeout value object."""

import pytest

import beephost_client as bc
from beephost_client import _config, _timeout


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("unix:///tmp/x.sock", "pipe"),
        ("http://h:1", "http"),
        ("HTTPS://h", "http"),
        ("grpc://h:1", "grpc"),
        ("grpcs://h", "grpc"),
    ],
)
def test_scheme_table(url: str, kind: str) -> None:
    assert _config.transport_kind(url) == kind


def test_unknown_schemes_are_refused() -> None:
    with pytest.raises(ValueError, match="unix://"):
        _config.transport_kind("tcp://h:1")
    with pytest.raises(ValueError, match="unsupported"):
        _config.transport_kind("/just/a/path")


def test_unix_paths() -> None:
    assert (
        _config.unix_path("unix:///run/beephost/pipe.sock") == "/run/beephost/pipe.sock"
    )
    assert _config.unix_path("unix:pipe.sock") == "pipe.sock"
    with pytest.raises(ValueError, match="path"):
        _config.unix_path("unix://")


def test_transport_instances_follow_the_url() -> None:
    client = bc.connect("unix:///tmp/none.sock")
    assert isinstance(client._transport, bc.PipeTransport)
    client.close()
    aclient = bc.aconnect("http://127.0.0.1:1/prefix")
    assert isinstance(aclient._transport, bc.AsyncHTTPTransport)
    # grpc:// is left out: a gRPC channel starts its own threads (no unit test material).


def test_timeouts() -> None:
    timeout = bc.Timeout(request=10, connect=2, grace=1)
    assert timeout.wait(4) == 5
    assert _timeout.as_timeout(3) == bc.Timeout(request=3)
    with pytest.raises(ValueError, match="grace"):
        bc.Timeout(grace=-1)

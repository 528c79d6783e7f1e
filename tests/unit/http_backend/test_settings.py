"""Settings: the prefix, the defaults, and the unsafe values refused at start-up."""

import os

import pytest
from pydantic import SecretStr, ValidationError

from beephost_http_backend.settings import Settings


def test_defaults() -> None:
    settings = Settings()
    assert (settings.host, settings.port) == ("127.0.0.1", 5678)
    assert settings.max_request_bytes == 32 << 20
    assert settings.token is None
    assert settings.public_docs is False
    assert settings.swagger_ui_url is None


def test_reads_its_own_prefix() -> None:
    os.environ["BEEPHOST_HTTP_BACKEND_PORT"] = "9999"
    os.environ["BEEPHOST_HTTP_BACKEND_MAX_SESSIONS"] = "3"
    os.environ["BEEPHOST_PIPE_BACKEND_PORT"] = "1"
    settings = Settings()
    assert settings.port == 9999
    assert settings.executor_config().max_sessions == 3


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "backend.internal"])
def test_refuses_a_network_port_without_a_token(host: str) -> None:
    with pytest.raises(ValidationError, match="without a token"):
        Settings(host=host)
    assert Settings(host=host, token=SecretStr("s3cret-s3cret")).host == host
    assert Settings(host=host, allow_unauthenticated=True).host == host


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.0.0.2"])
def test_loopback_needs_no_token(host: str) -> None:
    assert Settings(host=host).token is None


@pytest.mark.parametrize(
    ("token", "problem"),
    [
        ("", "token is empty"),
        ("   ", "printable ASCII without spaces"),
        ("two words", "printable ASCII without spaces"),
        ("t\u00f6ken", "printable ASCII without spaces"),
    ],
)
def test_refuses_a_token_no_transport_can_carry(token: str, problem: str) -> None:
    # The same rule in every backend (BackendSettings): it travels in headers.
    with pytest.raises(ValidationError, match=problem):
        Settings(token=SecretStr(token))


def test_token_is_secret() -> None:
    settings = Settings(token=SecretStr("hunter2-hunter2"))
    assert "hunter2" not in repr(settings)
    check = settings.token_check()
    assert check is not None
    assert check.matches("hunter2-hunter2")
    assert not check.matches("hunter2-hunter")


def test_limits_are_validated() -> None:
    with pytest.raises(ValidationError):
        Settings(max_request_bytes=10)
    with pytest.raises(ValidationError):
        Settings(port=70000)
    assert Settings(
        swagger_ui_url="https://assets.example/swagger/"
    ).swagger_ui_url == ("https://assets.example/swagger")


def test_the_healthcheck_probes_a_wildcard_address_over_loopback() -> None:
    # tests/unit/test_healthchecks.py: it reads the address Settings read.
    from beephost_http_backend import healthcheck

    assert healthcheck.probe_host("0.0.0.0") == "127.0.0.1"
    assert healthcheck.probe_host("::") == "::1"

"""An allow-list backend's environment: the proxy variables, the trust bundle, the
secrets' markers (never a value), and the server's relay settings."""

import json

import pytest

from beephost_controller.engine.sandbox_env import (
    EGRESS_BUNDLE,
    proxy_server_env,
    proxy_worker_env,
    secret_variable,
    server_environment,
)
from beephost_controller.schemas import BackendLimits
from beephost_controller.settings import Settings
from beephost_pipe_backend.settings import Settings as PipeSettings
from tests.unit.controller.support import ready_environment

PROXY = "http://b-0123456789ab:tok-en_1@127.0.0.1:3128"


def test_user_code_reaches_the_proxy_through_the_loopback_relay() -> None:
    env = proxy_worker_env("b-0123456789ab", "tok-en_1", [])
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        assert env[name] == PROXY
    assert env["NO_PROXY"] == env["no_proxy"] == "localhost,127.0.0.1,::1"
    for name in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "PIP_CERT", "CURL_CA_BUNDLE"):
        assert env[name] == EGRESS_BUNDLE


def test_a_token_with_url_characters_is_quoted_in_the_proxy_url() -> None:
    env = proxy_worker_env("b-1", "a/b@c:d", [])
    assert env["HTTP_PROXY"] == "http://b-1:a%2Fb%40c%3Ad@127.0.0.1:3128"


def test_each_secret_gets_a_marker_never_its_value() -> None:
    env = proxy_worker_env("b-1", "t", ["weather-key", "data.token", "x_y"])
    assert env["WEATHER_KEY"] == "beephost-secret:weather-key"
    assert env["DATA_TOKEN"] == "beephost-secret:data.token"
    assert env["X_Y"] == "beephost-secret:x_y"


@pytest.mark.parametrize(
    "secret",
    [
        "http-proxy",
        "https_proxy",
        "no-proxy",
        "ssl-cert-file",
        "path",
        "home",
        "pythonpath",
        "beephost-controller-token",
        "1password",
    ],
)
def test_a_secret_named_like_a_reserved_variable_gets_no_marker(secret: str) -> None:
    assert secret_variable(secret) is None
    env = proxy_worker_env("b-1", "t", [secret])
    assert not any(value.startswith("beephost-secret:") for value in env.values())


def test_the_server_relays_its_loopback_port_to_the_mounted_socket() -> None:
    env = proxy_server_env("http")
    assert env == {
        "BEEPHOST_HTTP_BACKEND_EGRESS_SOCKET": "/run/beephost-egress/proxy.sock",
        "BEEPHOST_HTTP_BACKEND_EGRESS_PORT": "3128",
    }


def test_the_server_settings_accept_the_wiring(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What the plan writes is what the backend's settings read back.
    worker = proxy_worker_env("b-1", "t", ["weather-key"])
    env = {
        **server_environment(
            "pipe",
            ready_environment(),
            Settings(),
            BackendLimits(),
            controller_token=None,
            network=False,
            egress_env=worker,
        ),
        **proxy_server_env("pipe"),
    }
    assert json.loads(env["BEEPHOST_PIPE_BACKEND_WORKER_ENV"]) == worker
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    config = PipeSettings().executor_config()
    assert config.egress_socket == "/run/beephost-egress/proxy.sock"
    assert config.egress_port == 3128
    assert config.extra_env["WEATHER_KEY"] == "beephost-secret:weather-key"

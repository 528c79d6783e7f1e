"""compose.yaml's optional MCP server (profile ``mcp``): the controller's image as
``beephost-mcp``, hardened like the other services, on the host's loopback only, a
token required, its settings valid for the server; scripts/up generates its token."""

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from beephost_mcp.settings import Settings as McpSettings

ROOT = Path(__file__).resolve().parents[2]
_DEFAULT = re.compile(r"\$\{(\w+)(?::-([^}]*)|:\?[^}]*)?\}")


def _compose() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "compose.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture
def mcp() -> dict[str, Any]:
    service: dict[str, Any] = _compose()["services"]["mcp"]
    return service


def _interpolate(value: str, given: dict[str, str]) -> str:
    """``${VAR:-default}`` and ``${VAR:?...}`` as compose reads them, from ``given``."""
    return _DEFAULT.sub(lambda m: given.get(m[1], m[2] or ""), value)


def test_it_runs_only_with_the_mcp_profile_from_the_controllers_image(
    mcp: dict[str, Any],
) -> None:
    services = _compose()["services"]
    assert mcp["profiles"] == ["mcp"]
    assert mcp["image"] == services["controller"]["image"]
    assert mcp["entrypoint"] == ["/opt/beephost/bin/beephost-mcp"]
    # Every other service runs without a profile or with its own.
    assert [n for n, s in services.items() if "mcp" in s.get("profiles", [])] == ["mcp"]


def test_it_is_hardened_like_the_others(mcp: dict[str, Any]) -> None:
    assert mcp["read_only"] is True
    assert mcp["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in mcp["security_opt"]
    assert mcp["pull_policy"] == _compose()["services"]["controller"]["pull_policy"]
    assert {"mem_limit", "cpus", "pids_limit"} <= set(mcp)
    assert any(t.startswith("/tmp:") for t in mcp["tmpfs"])
    # The image's state volume is covered: no anonymous volume.
    assert any(t.startswith("/var/lib/beephost:") for t in mcp["tmpfs"])
    assert "user" not in mcp  # the image's USER 10001:10001
    assert "volumes" not in mcp  # no Docker socket, no host path
    assert mcp["healthcheck"]["test"] == [
        "CMD",
        "/opt/beephost/bin/beephost-mcp",
        "healthcheck",
    ]
    assert mcp["depends_on"] == {"controller": {"condition": "service_healthy"}}
    assert mcp["labels"]["io.beephost.managed"] == "true"
    assert all(key.startswith("io.beephost.") for key in mcp["labels"])


def test_it_listens_on_the_hosts_loopback_only(mcp: dict[str, Any]) -> None:
    # The host's network: the controller's backends publish on the host's loopback.
    assert mcp["network_mode"] == "host"
    assert "ports" not in mcp
    env = mcp["environment"]
    assert env["BEEPHOST_MCP_HOST"] == "127.0.0.1"
    assert env["BEEPHOST_MCP_TRANSPORT"] == "http"
    assert "ALLOW_UNAUTHENTICATED" not in " ".join(env)
    assert env["BEEPHOST_MCP_CONTROLLER_URL"] == (
        "http://127.0.0.1:${BEEPHOST_CONTROLLER_PORT:-8600}"
    )


def _settings_from(
    env: dict[str, str], given: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> McpSettings:
    """The server's settings from the service's environment, as it reads them."""
    for key in [k for k in os.environ if k.startswith("BEEPHOST_MCP_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        if key != "HOME":
            monkeypatch.setenv(key, _interpolate(value, given))
    return McpSettings()


def test_its_settings_are_the_servers_and_need_the_token(
    mcp: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    env: dict[str, str] = mcp["environment"]
    fields = {f"BEEPHOST_MCP_{name.upper()}" for name in McpSettings.model_fields}
    assert set(env) - {"HOME"} <= fields
    given = {"BEEPHOST_CONTROLLER_TOKEN": "controller-token-0123456789"}
    with_token = given | {"BEEPHOST_MCP_TOKEN": "mcp-token-0123456789abcdef"}
    settings = _settings_from(env, with_token, monkeypatch)
    assert settings.token is not None
    assert (settings.environment, settings.create_environment) == ("mcp", True)
    assert settings.pool_size == 2
    assert settings.environment_requirements == []
    assert settings.port == 8700
    chosen = _settings_from(
        env,
        with_token | {"BEEPHOST_MCP_ENVIRONMENT_REQUIREMENTS": '["six==1.17.0"]'},
        monkeypatch,
    )
    assert chosen.environment_requirements == ["six==1.17.0"]
    # Without the token (an older .env), the server refuses to start.
    with pytest.raises(ValueError, match="BEEPHOST_MCP_TOKEN"):
        _settings_from(env, given, monkeypatch)


def test_scripts_up_generates_its_token_once() -> None:
    up = (ROOT / "scripts" / "up").read_text()
    assert '("CONTROLLER", "PIPE", "HTTP", "RPC", "MCP")' in up
    # An env file from before: the token is added, and shown that once.
    assert "grep -q '^BEEPHOST_MCP_TOKEN=' \"$env_file\"" in up
    assert "(shown this once)" in up
    assert os.access(ROOT / "scripts" / "up", os.X_OK)


def test_the_controller_passes_the_egress_settings_through_empty_as_unset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from beephost_controller.settings import Settings as ControllerSettings

    environment = _compose()["services"]["controller"]["environment"]
    passed = {
        "BEEPHOST_CONTROLLER_EGRESS_PROXY_NETWORK": "BEEPHOST_EGRESS_PROXY_NETWORK",
        "BEEPHOST_CONTROLLER_EGRESS_INTERNAL_RANGES": "BEEPHOST_EGRESS_INTERNAL_RANGES",
        "BEEPHOST_CONTROLLER_EGRESS_HOSTS": "BEEPHOST_EGRESS_HOSTS",
    }
    for setting, variable in passed.items():
        assert environment[setting] == f"${{{variable}:-}}"
    # Unset on the host: compose passes "", which the controller reads as unset.
    for setting in passed:
        monkeypatch.setenv(setting, _interpolate(environment[setting], {}))
    defaults = ControllerSettings()
    assert defaults.egress_proxy_network == "bridge"
    assert defaults.egress_internal_ranges == {}
    assert defaults.egress_hosts == {}
    given = {
        "BEEPHOST_EGRESS_PROXY_NETWORK": "egress-net",
        "BEEPHOST_EGRESS_INTERNAL_RANGES": '{"data": "10.1.2.0/24"}',
        "BEEPHOST_EGRESS_HOSTS": '{"api.allowed.test": "10.199.0.5"}',
    }
    for setting in passed:
        monkeypatch.setenv(setting, _interpolate(environment[setting], given))
    settings = ControllerSettings()
    assert settings.egress_proxy_network == "egress-net"
    assert settings.egress_internal_ranges == {"data": "10.1.2.0/24"}
    assert settings.egress_hosts == {"api.allowed.test": "10.199.0.5"}

"""Settings that would be unsafe are refused before anything starts."""

import pytest
from pydantic import ValidationError

from beephost_mcp.__main__ import main
from beephost_mcp.settings import Settings

TOKEN = "a-long-enough-token-123"


def _settings(**values: object) -> Settings:
    return Settings.model_validate(values)


def test_http_without_a_token_is_refused() -> None:
    with pytest.raises(ValidationError, match="BEEPHOST_MCP_TOKEN"):
        _settings(transport="http", environment="data")


def test_http_without_a_token_is_allowed_only_on_loopback_and_when_asked() -> None:
    assert _settings(transport="http", environment="data", allow_unauthenticated=True)
    with pytest.raises(ValidationError, match="refusing to serve without a token"):
        _settings(
            transport="http",
            environment="data",
            allow_unauthenticated=True,
            host="0.0.0.0",
        )


def test_a_fixed_backend_is_for_stdio_only() -> None:
    assert _settings(backend_url="http://127.0.0.1:5678").pooled is False
    with pytest.raises(ValidationError, match="shared by every HTTP session"):
        _settings(transport="http", backend_url="http://127.0.0.1:5678", token=TOKEN)


def test_some_source_of_sandboxes_is_needed() -> None:
    with pytest.raises(ValidationError, match="BEEPHOST_MCP_ENVIRONMENT"):
        _settings()


def test_bad_settings_stop_the_entry_point_without_echoing_a_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BEEPHOST_MCP_TRANSPORT", "http")
    monkeypatch.setenv("BEEPHOST_MCP_ENVIRONMENT", "data")
    monkeypatch.setenv("BEEPHOST_MCP_TOKEN", "short-secret")
    with pytest.raises(SystemExit) as info:
        main([])
    assert "shorter than 16 characters" in str(info.value.code)
    assert "short-secret" not in str(info.value.code)


def test_setting_up_the_controller_needs_its_pool() -> None:
    made = _settings(
        environment="mcp",
        create_environment=True,
        environment_requirements=["six"],
        pool_size=2,
    )
    assert (made.create_environment, made.pool_size) == (True, 2)
    assert made.environment_requirements == ["six"]
    for extra in ({"create_environment": True}, {"pool_size": 1}):
        with pytest.raises(ValidationError, match="not a fixed backend"):
            _settings(backend_url="http://127.0.0.1:5678", **extra)
    with pytest.raises(ValidationError, match="pool_size"):
        _settings(environment="mcp", pool_size=65)

"""The egress proxy's decisions, one row per case (the proxy itself is tested for real
in tests/integration/egress)."""

import base64
import ipaddress
import os
from pathlib import Path

import pytest

from beephost_controller.egress_proxy_config import (
    ConfigError,
    ProxyConfig,
    authenticate,
    load,
    token_digest,
)
from beephost_controller.egress_rules import (
    address_refusal,
    check_addresses,
    check_sni,
    intercepted,
    match,
    secret_header,
)
from beephost_controller.schemas.egress import EgressRule, SecretHeader

ALLOW = [
    EgressRule(host="api.weather.example", ports=[443]),
    EgressRule(host="*.data.example.com"),
    EgressRule(cidr="203.0.113.0/24", ports=[8443]),
    EgressRule(
        host="keyed.example",
        secret=SecretHeader(secret="k", header="X-Api-Key", value="{secret}"),
    ),
]


@pytest.mark.parametrize(
    ("host", "port", "destination", "reason"),
    [
        ("api.weather.example", 443, "api.weather.example", None),
        ("API.Weather.Example.", 443, "api.weather.example", None),
        ("api.weather.example", 80, None, "port 80 is not allowed for 'api.weather.example' (allowed: 443)"),
        ("weather.example", 443, None, "the host 'weather.example' is not on the allow-list"),
        ("x.data.example.com", 80, "*.data.example.com", None),
        ("a.b.data.example.com", 443, "*.data.example.com", None),
        ("data.example.com", 443, None, "the host 'data.example.com' is not on the allow-list"),
        ("evil-data.example.com", 443, None, "the host 'evil-data.example.com' is not on the allow-list"),
        ("203.0.113.9", 8443, "203.0.113.0/24", None),
        ("[203.0.113.9]", 8443, "203.0.113.0/24", None),
        ("203.0.113.9", 443, None, "port 443 is not allowed for '203.0.113.9' (allowed: 8443)"),
        ("198.51.100.1", 443, None, "the address '198.51.100.1' is not on the allow-list"),
        # An address never matches a host rule, nor a name a CIDR rule.
        ("203.0.113.0.nip.example", 8443, None, "the host '203.0.113.0.nip.example' is not on the allow-list"),
    ],
)  # fmt: skip
def test_match(
    host: str, port: int, destination: str | None, reason: str | None
) -> None:
    verdict = match(ALLOW, host, port)
    if destination is None:
        assert (verdict.decision, verdict.reason, verdict.rule) == (
            "refused",
            reason,
            None,
        )
    else:
        assert verdict.allowed
        assert verdict.rule is not None
        assert verdict.rule.destination == destination


@pytest.mark.parametrize(
    ("connect", "sni", "allowed"),
    [
        ("api.weather.example", "api.weather.example", True),
        ("api.weather.example", "API.weather.example.", True),
        ("api.weather.example", "evil.example", False),
        ("api.weather.example", None, False),
        ("203.0.113.9", None, True),
        ("203.0.113.9", "evil.example", False),
    ],
)
def test_check_sni(connect: str, sni: str | None, allowed: bool) -> None:
    assert check_sni(connect, sni).allowed is allowed


CONTROLLER = [ipaddress.ip_network("192.0.2.10/32")]
INTERNAL = {"data": ipaddress.ip_network("10.1.2.0/24")}


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("93.184.216.34", None),
        ("2606:2800:220:1::1", None),
        ("169.254.169.254", "169.254.169.254 is a cloud metadata address"),
        ("::ffff:169.254.169.254", "169.254.169.254 is a cloud metadata address"),
        ("fd00:ec2::254", "fd00:ec2::254 is a cloud metadata address (AWS, IPv6)"),
        ("127.0.0.1", "127.0.0.1 is a loopback address"),
        ("::1", "::1 is a loopback address"),
        ("10.9.9.9", "10.9.9.9 is a private address (RFC 1918)"),
        ("10.1.2.3", None),
        ("169.254.1.1", "169.254.1.1 is a link-local address"),
        ("fe80::1", "fe80::1 is a link-local address"),
        ("0.0.0.0", "0.0.0.0 is an unspecified address"),
        ("192.0.2.10", "192.0.2.10 is the controller's or its host's"),
    ],
)
def test_address_refusal(address: str, why: str | None) -> None:
    assert address_refusal(ipaddress.ip_address(address), CONTROLLER, INTERNAL) == why


def test_the_controller_is_refused_even_inside_an_internal_range() -> None:
    inside = {"all": ipaddress.ip_network("192.0.2.0/24")}
    why = address_refusal(ipaddress.ip_address("192.0.2.10"), CONTROLLER, inside)
    assert why == "192.0.2.10 is the controller's or its host's"


@pytest.mark.parametrize(
    ("addresses", "allowed"),
    [
        (["93.184.216.34"], True),
        (["93.184.216.34", "127.0.0.1"], False),
        (["127.0.0.1", "93.184.216.34"], False),
        ([], False),
    ],
)
def test_check_addresses_refuses_a_name_for_any_refused_answer(
    addresses: list[str], allowed: bool
) -> None:
    assert check_addresses("api.weather.example", addresses).allowed is allowed


def test_only_destinations_with_a_secret_are_intercepted() -> None:
    assert [intercepted(rule) for rule in ALLOW] == [False, False, False, True]
    assert not intercepted(None)


def test_secret_header() -> None:
    assert secret_header(ALLOW[3], {"k": "sk-0123456789"}) == (
        "X-Api-Key",
        "sk-0123456789",
    )
    bearer = EgressRule(host="a.example", secret=SecretHeader(secret="k"))
    assert secret_header(bearer, {"k": "v" * 8}) == (
        "Authorization",
        "Bearer " + "v" * 8,
    )
    assert secret_header(ALLOW[0], {}) is None
    with pytest.raises(KeyError):
        secret_header(ALLOW[3], {})


def _config(tmp_path: Path, mode: int, text: str) -> Path:
    path = tmp_path / "config.json"
    path.write_text(text)
    os.chmod(path, mode)
    return path


def test_load_refuses_a_file_others_may_read(tmp_path: Path) -> None:
    path = _config(tmp_path, 0o644, "{}")
    with pytest.raises(ConfigError, match="make it 0600"):
        load(path)


def test_load_never_quotes_a_secret_of_an_invalid_file(tmp_path: Path) -> None:
    path = _config(tmp_path, 0o600, '{"secrets": {"k": 12345678}, "extra": "sk-9"}')
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert "12345678" not in str(caught.value)
    assert "sk-9" not in str(caught.value)
    assert "secrets.k" in str(caught.value)


def test_load_reads_a_valid_file(tmp_path: Path) -> None:
    config = ProxyConfig(
        blocked=["192.0.2.10/32"], internal_ranges={"data": "10.1.2.0/24"}
    )
    path = _config(tmp_path, 0o600, config.model_dump_json())
    loaded = load(path)
    assert loaded.blocked_networks() == CONTROLLER
    assert loaded.internal_networks() == INTERNAL


def _basic(text: str) -> str:
    return "Basic " + base64.b64encode(text.encode()).decode()


CONFIG = ProxyConfig.model_validate(
    {
        "backends": {
            "b1": {
                "token_sha256": token_digest("t-one"),
                "allow": [{"host": "a.example"}],
            },
            "b2": {
                "token_sha256": token_digest("t-two"),
                "allow": [{"host": "b.example"}],
            },
        }
    }
)


@pytest.mark.parametrize(
    ("header", "backend"),
    [
        (_basic("b1:t-one"), "b1"),
        (_basic("b2:t-two"), "b2"),
        # A sandbox cannot claim another's identity with its own token.
        (_basic("b2:t-one"), None),
        (_basic("b3:t-one"), None),
        (_basic("b1"), None),
        ("Bearer t-one", None),
        ("Basic !!!", None),
        (None, None),
    ],
)
def test_authenticate(header: str | None, backend: str | None) -> None:
    found = authenticate(CONFIG, header)
    assert (found[0] if found else None) == backend

"""``--allow`` and ``--secret`` parsed into the policy the controller takes, and a
policy's one-line summary: sans-I/O, table by table."""

import re
from typing import Any

import pytest
import typer

from beephost_cli.commands._egress import egress_policy, egress_summary
from beephost_client.controller import Egress


@pytest.mark.parametrize(
    ("allow", "entry"),
    [
        ("api.example.com", {"host": "api.example.com"}),
        ("api.example.com:443", {"host": "api.example.com", "ports": [443]}),
        ("*.example.com:443,8443", {"host": "*.example.com", "ports": [443, 8443]}),
        ("203.0.113.0/24", {"cidr": "203.0.113.0/24"}),
        ("10.1.2.0/24:5432", {"cidr": "10.1.2.0/24", "ports": [5432]}),
        ("[2001:db8::/32]", {"cidr": "2001:db8::/32"}),
        ("[2001:db8::/32]:443", {"cidr": "2001:db8::/32", "ports": [443]}),
        ("2001:db8::/32", {"cidr": "2001:db8::/32"}),
        # What the controller refuses still parses: it has the one list of refusals.
        ("*", {"host": "*"}),
        ("localhost:8080", {"host": "localhost", "ports": [8080]}),
    ],
)
def test_a_destination_becomes_an_entry(allow: str, entry: dict[str, Any]) -> None:
    assert egress_policy([allow], None) == {"allow": [entry]}


@pytest.mark.parametrize(
    ("allow", "secrets", "why"),
    [
        (["api.example.com:https"], None, "ports are numbers"),
        (["api.example.com:443,"], None, "ports are numbers"),
        (["[2001:db8::/32"], None, "expected [CIDR]"),
        (["[2001:db8::/32]443"], None, "expected [CIDR]"),
        (None, ["api.example.com=k"], "attaches to an --allow"),
        (["api.example.com"], ["other.example.com=k"], "no --allow other.example.com"),
        (["api.example.com"], ["api.example.com"], "expected DEST=NAME"),
        (["api.example.com"], ["api.example.com="], "expected DEST=NAME"),
        (["api.example.com"], ["=k"], "expected DEST=NAME"),
        (["api.example.com"], ["api.example.com=k;X-Key"], "'NAME: VALUE'"),
        (["api.example.com"], ["api.example.com=k;: v"], "'NAME: VALUE'"),
    ],
)
def test_malformed_options_are_usage_errors(
    allow: list[str] | None, secrets: list[str] | None, why: str
) -> None:
    with pytest.raises(typer.BadParameter, match=re.escape(why)):
        egress_policy(allow, secrets)


def test_a_secret_attaches_to_its_destination_with_a_default_or_own_header() -> None:
    policy = egress_policy(
        ["api.example.com:443", "10.1.2.0/24", "other.example.com"],
        ["api.example.com=weather-key", "10.1.2.0/24=db;X-Token: t={secret}"],
    )
    assert policy == {
        "allow": [
            {
                "host": "api.example.com",
                "ports": [443],
                "secret": {"secret": "weather-key"},
            },
            {
                "cidr": "10.1.2.0/24",
                "secret": {"secret": "db", "header": "X-Token", "value": "t={secret}"},
            },
            {"host": "other.example.com"},
        ]
    }
    assert egress_policy(None, None) is None
    assert egress_policy([], []) is None


@pytest.mark.parametrize(
    ("egress", "summary"),
    [
        (Egress(), "none"),
        (Egress("full"), "full network (unsafe for model code)"),
        (
            Egress(
                "allow_list",
                (
                    {
                        "host": "api.example.com",
                        "ports": [443],
                        "secret": {"secret": "k", "header": "Authorization"},
                    },
                    {"cidr": "2001:db8::/32", "ports": [443, 80]},
                ),
            ),
            "allow api.example.com:443 (+Authorization from secret k), "
            "[2001:db8::/32]:443,80",
        ),
    ],
)
def test_a_policy_in_one_line(egress: Egress, summary: str) -> None:
    assert egress_summary(egress) == summary

"""Egress policies, decided: what an allow-list may name (the grammar and the refusals,
table by table), the policy a start ends up with, and the engines' refusal of an
allow-list they cannot enforce yet."""

import ipaddress
import json
from dataclasses import replace

import jsonschema
import pytest
from pydantic import ValidationError

from beephost_controller.egress import (
    check_policy,
    check_start,
    parse_internal_ranges,
    refuse_scoped_secrets,
    secret_names,
)
from beephost_controller.engine import docker_plan, kube_plan
from beephost_controller.kube_settings import KubernetesSettings
from beephost_controller.rows import BackendConfig, EnvironmentRow
from beephost_controller.schemas import BackendLimits, BackendOptions
from beephost_controller.schemas.backends import BackendCreate
from beephost_controller.schemas.egress import (
    EgressPolicy,
    EgressPublic,
    SecretPut,
)
from beephost_controller.schemas.environments import EnvironmentCreate
from beephost_controller.settings import Settings
from beephost_controller.starts import (
    BackendRequest,
    Minted,
    new_row,
    start_egress,
    token_digest,
)
from beephost_protocol.errors import InvalidRequest, Unauthorized, Unavailable
from tests.unit.controller.support import ready_environment


def _policy(**entry: object) -> EgressPolicy:
    return EgressPolicy.model_validate({"allow": [entry]})


ALLOWED_HOSTS = [
    "api.example.com",
    "example.com",
    "*.example.com",
    "*.api.example.co.uk",
    "a.b.c.d.example.org",
    "xn--bcher-kva.example",
    "api.allowed.test",
    "*.allowed.test",
    "s3.eu-west-1.amazonaws.com",
    "1password.com",
]


@pytest.mark.parametrize("host", ALLOWED_HOSTS)
def test_a_host_name_exact_or_one_wildcard_label_is_allowed(host: str) -> None:
    check_policy(_policy(host=host))


REFUSED_HOSTS = [
    ("*", "'*' alone"),
    ("*.com", "public suffix 'com'"),
    ("*.co.uk", "public suffix 'co.uk'"),
    ("*.github.io", "public suffix 'github.io'"),
    ("*.test", "public suffix 'test'"),
    ("*.*.example.com", "not a host name"),
    ("api.*.example.com", "not a host name"),
    ("*example.com", "not a host name"),
    ("API.example.com", "not a host name"),
    ("api_example.com", "not a host name"),
    ("-api.example.com", "not a host name"),
    ("api-.example.com", "not a host name"),
    ("api..example.com", "not a host name"),
    (".example.com", "not a host name"),
    ("example.com.", "not a host name"),
    ("api.example.com:443", "not a host name"),
    ("https://api.example.com", "not a host name"),
    ("bücher.example", "not a host name"),
    ("a" * 64 + ".example.com", "not a host name"),
    ("localhost", "the host's own"),
    ("db.localhost", "the host's own"),
    ("printer.local", "the host's own"),
    ("metadata.google.internal", "the host's own"),
    ("*.internal", "the host's own"),
    ("10.1.2.3", "allow it as a cidr"),
    ("169.254.169.254", "allow it as a cidr"),
    ("[::1]", "allow it as a cidr"),
    ("::1", "allow it as a cidr"),
    ("1.2.3.4.5", "never all digits"),
]


@pytest.mark.parametrize(("host", "why"), REFUSED_HOSTS)
def test_a_refused_host_names_the_entry_and_why(host: str, why: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        check_policy(_policy(host=host))
    assert caught.value.message.startswith(f"egress.allow[0] ({host!r}): ")
    assert why in caught.value.message
    assert caught.value.data == {"entry": 0, "destination": host}


ALLOWED_CIDRS = [
    "93.184.216.34/32",
    "203.0.113.0/24",
    "8.8.8.0/24",
    "2606:4700::/32",
    "2001:db8::/32",
]


@pytest.mark.parametrize("cidr", ALLOWED_CIDRS)
def test_a_public_cidr_is_allowed(cidr: str) -> None:
    check_policy(_policy(cidr=cidr))


REFUSED_CIDRS = [
    ("169.254.169.254/32", "cloud metadata"),
    ("fd00:ec2::254/128", "cloud metadata"),
    ("100.100.100.200/32", "cloud metadata"),
    ("168.63.129.16/32", "Azure"),
    ("10.0.0.0/8", "RFC 1918"),
    ("10.1.2.0/24", "RFC 1918"),
    ("172.16.5.4/32", "RFC 1918"),
    ("192.168.1.0/24", "RFC 1918"),
    ("100.64.0.0/10", "RFC 6598"),
    ("127.0.0.1/32", "loopback"),
    ("::1/128", "loopback"),
    ("169.254.10.0/24", "link-local"),
    ("fe80::/64", "link-local"),
    ("224.0.0.251/32", "multicast"),
    ("ff02::1/128", "multicast"),
    ("0.0.0.0/32", "unspecified"),
    ("::/128", "unspecified"),
    ("fd12:3456::/32", "ULA"),
    ("::ffff:10.0.0.1/128", "IPv4-mapped"),
    ("0.0.0.0/0", "every destination"),
    ("::/0", "every destination"),
    ("8.0.0.0/6", "RFC 1918"),  # wide enough to hold 10/8
    ("10.1.2.3/24", "has host bits set"),
    ("10.1.2.0/33", "not a CIDR"),
    ("example.com/24", "not a CIDR"),
    ("300.1.2.0/24", "not a CIDR"),
]


@pytest.mark.parametrize(("cidr", "why"), REFUSED_CIDRS)
def test_a_refused_cidr_names_the_entry_and_why(cidr: str, why: str) -> None:
    policy = EgressPolicy.model_validate(
        {"allow": [{"host": "api.example.com"}, {"cidr": cidr}]}
    )
    with pytest.raises(InvalidRequest) as caught:
        check_policy(policy)
    assert caught.value.message.startswith(f"egress.allow[1] ({cidr!r}): ")
    assert why in caught.value.message
    assert caught.value.data == {"entry": 1, "destination": cidr}


def test_an_internal_range_named_by_the_operator_allows_cidrs_inside_it() -> None:
    ranges = parse_internal_ranges(
        {"data-service": "10.1.2.0/24", "v6": "fd12:3456::/32"}
    )
    check_policy(_policy(cidr="10.1.2.0/24"), ranges)
    check_policy(_policy(cidr="10.1.2.7/32"), ranges)
    check_policy(_policy(cidr="fd12:3456:1::/48"), ranges)
    for outside in ("10.1.3.0/24", "10.1.0.0/16", "169.254.169.254/32"):
        with pytest.raises(InvalidRequest, match="EGRESS_INTERNAL_RANGES"):
            check_policy(_policy(cidr=outside), ranges)


@pytest.mark.parametrize(
    ("entry", "where"),
    [
        ({"host": "a.example.com", "ports": [0]}, "ports.0"),
        ({"host": "a.example.com", "ports": [65536]}, "ports.0"),
        ({"host": "a.example.com", "ports": [-1]}, "ports.0"),
        ({"host": "a.example.com", "ports": []}, "ports"),
        ({"host": "a.example.com", "ports": ["https"]}, "ports.0"),
        ({"host": "a.example.com", "cidr": "203.0.113.0/24"}, "exactly one"),
        ({}, "exactly one"),
        ({"host": "a.example.com", "port": 443}, "port"),
        ({"host": "a.example.com", "secret": {"header": "X"}}, "secret.secret"),
        (
            {"host": "a.example.com", "secret": {"secret": "k", "header": "Bad Name"}},
            "secret.header",
        ),
        (
            {"host": "a.example.com", "secret": {"secret": "K!", "header": "X"}},
            "secret.secret",
        ),
    ],
)
def test_malformed_entries_are_refused_by_the_model(
    entry: dict[str, object], where: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        EgressPolicy.model_validate({"allow": [entry]})
    assert where in str(caught.value)


def test_an_empty_or_oversized_allow_list_is_refused() -> None:
    with pytest.raises(ValidationError):
        EgressPolicy.model_validate({"allow": []})
    with pytest.raises(ValidationError):
        EgressPolicy.model_validate(
            {"allow": [{"host": f"h{i}.example.com"} for i in range(257)]}
        )


def test_ports_default_to_https_and_http_and_may_not_repeat() -> None:
    assert _policy(host="a.example.com").allow[0].ports == [443, 80]
    with pytest.raises(InvalidRequest, match="listed twice"):
        check_policy(_policy(host="a.example.com", ports=[443, 443]))


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("Bearer a-fixed-token", "exactly once"),
        ("{secret}{secret}", "exactly once"),
        ("Bearer {secret} {user}", "only placeholder"),
        ("Bearer {secret}\r\nX-Injected: 1", "printable ASCII"),
        ("Token {secret}}", "only placeholder"),
    ],
)
def test_a_secret_header_holds_one_placeholder_and_nothing_else(
    value: str, why: str
) -> None:
    policy = _policy(
        host="api.example.com",
        secret={"secret": "weather", "header": "Authorization", "value": value},
    )
    with pytest.raises(InvalidRequest, match=why):
        check_policy(policy)


def test_a_secret_header_defaults_to_a_bearer_authorization() -> None:
    policy = _policy(host="api.example.com", secret={"secret": "weather"})
    check_policy(policy)
    header = policy.allow[0].secret
    assert header is not None
    assert (header.header, header.value) == ("Authorization", "Bearer {secret}")
    assert secret_names(policy) == ["weather"]


def test_a_start_names_only_stored_secrets_and_is_checked_again() -> None:
    policy = EgressPolicy.model_validate(
        {
            "allow": [
                {"host": "a.example.com", "secret": {"secret": "one"}},
                {"host": "b.example.com", "secret": {"secret": "two"}},
                {"host": "c.example.com", "secret": {"secret": "one"}},
            ]
        }
    )
    check_start(policy.allow, {}, lambda name: True)
    check_start(None, {}, lambda name: False)
    with pytest.raises(InvalidRequest) as caught:
        check_start(policy.allow, {}, lambda name: name == "one")
    assert "not stored: two" in caught.value.message
    assert caught.value.data == {"secrets": ["two"]}
    # An internal range the operator has taken back since: refused at the start.
    internal = _policy(cidr="10.1.2.0/24").allow
    check_start(internal, {"svc": "10.1.2.0/24"}, lambda name: True)
    with pytest.raises(InvalidRequest, match="RFC 1918"):
        check_start(internal, {}, lambda name: True)


def test_only_the_controllers_token_attaches_secrets() -> None:
    with_secret = _policy(host="api.example.com", secret={"secret": "weather"})
    refuse_scoped_secrets(None, with_secret)
    refuse_scoped_secrets("b-0123456789ab", _policy(host="api.example.com"))
    refuse_scoped_secrets("b-0123456789ab", None)
    with pytest.raises(Unauthorized, match="controller's token"):
        refuse_scoped_secrets("b-0123456789ab", with_secret)


def test_network_and_an_allow_list_contradict_each_other() -> None:
    allow = {"allow": [{"host": "api.example.com"}]}
    with pytest.raises(ValidationError, match="contradict"):
        EnvironmentCreate.model_validate(
            {"name": "e", "network": True, "egress": allow}
        )
    EnvironmentCreate.model_validate({"name": "e", "network": False, "egress": allow})
    for network in (True, False):
        with pytest.raises(ValidationError, match="contradict"):
            BackendCreate.model_validate(
                {
                    "environment": "e",
                    "type": "http",
                    "options": {"network": network},
                    "egress": allow,
                }
            )


@pytest.mark.parametrize(
    "value",
    ["short", "x" * 8193, "line\nbreak-value", "nul\x00-in-value", "tab\there-value"],
)
def test_a_secret_value_is_printable_ascii_of_8_to_8192_characters(value: str) -> None:
    with pytest.raises(ValidationError) as caught:
        SecretPut(value=value)
    # The model's own message never repeats the value (the API's error leaves the
    # input out too: errors.py).
    assert all(value not in str(e["msg"]) for e in caught.value.errors())


# -- the policy a start ends up with ------------------------------------------------

MINTED = Minted(
    "b-0123456789ab", "tok-" + "x" * 28, "ctl-token", 1000, 1000, "egress-token"
)
ALLOW = EgressPolicy.model_validate({"allow": [{"host": "api.example.com"}]})


def _env(network: bool = False, allow: EgressPolicy | None = None) -> EnvironmentRow:
    return replace(
        ready_environment("e"),
        network=network,
        egress_allow=None if allow is None else tuple(allow.allow),
    )


@pytest.mark.parametrize(
    ("env_network", "env_allow", "options", "start_allow", "expected"),
    [
        (False, None, BackendOptions(), None, "none"),
        (True, None, BackendOptions(), None, "full"),
        (False, ALLOW, BackendOptions(), None, "allow_list"),
        (False, ALLOW, BackendOptions(network=False), None, "none"),
        (False, ALLOW, BackendOptions(network=True), None, "full"),
        (True, None, BackendOptions(), ALLOW, "allow_list"),
        (False, None, BackendOptions(), ALLOW, "allow_list"),
    ],
)
def test_a_start_has_its_own_policy_else_its_environments(
    env_network: bool,
    env_allow: EgressPolicy | None,
    options: BackendOptions,
    start_allow: EgressPolicy | None,
    expected: str,
) -> None:
    env = _env(env_network, env_allow)
    request = BackendRequest("e", "http", options=options, egress=start_allow)
    network, allow = start_egress(request, env)
    row = new_row(
        request,
        env,
        Settings(),
        MINTED,
        name="n",
        port=None,
        bind_address="127.0.0.1",
        controller_token=None,
    )
    assert row.egress.mode == expected
    assert row.config.hardening.network is (expected == "full")
    assert (network, allow) == (expected == "full", row.config.egress_allow)
    # Kept through the stored JSON.
    assert BackendConfig.from_json(row.config.to_json()) == row.config
    assert EgressPublic.of(network, allow) == row.egress


def test_rows_written_before_allow_lists_have_none() -> None:
    config = BackendConfig(None, "127.0.0.1", BackendLimits(), BackendOptions())
    stored = config.to_json()
    del stored["egress_allow"]
    assert BackendConfig.from_json(stored).egress_allow is None


# -- the engines refuse what they cannot enforce yet --------------------------------

ENGINE_SETTINGS = Settings(name="ctl")


def _docker(request: BackendRequest, env: EnvironmentRow) -> object:
    return docker_plan.plan(
        request,
        env,
        ENGINE_SETTINGS,
        minted=MINTED,
        held_ports={},
        pick_port=lambda address, held: 20000,
    )


def _kube(request: BackendRequest, env: EnvironmentRow) -> object:
    return kube_plan.plan(
        request,
        env,
        ENGINE_SETTINGS,
        KubernetesSettings(namespace="s", registry="r.example:5000/x"),
        minted=MINTED,
        probe="exec",
    )


def test_kubernetes_without_a_proxy_refuses_an_allow_list() -> None:
    for request, env in (
        (BackendRequest("e", "http"), _env(allow=ALLOW)),
        (BackendRequest("e", "http", egress=ALLOW), _env()),
        (BackendRequest("e", "http", egress=ALLOW), _env(network=True)),
    ):
        with pytest.raises(Unavailable) as caught:
            _kube(request, env)
        assert "need the egress proxy" in caught.value.message
        assert caught.value.data == {"engine": "kubernetes", "egress": "allow_list"}
    # none and full start as before; an explicit network replaces the allow-list.
    _kube(BackendRequest("e", "http"), _env())
    _kube(BackendRequest("e", "http"), _env(network=True))
    _kube(
        BackendRequest("e", "http", options=BackendOptions(network=False)),
        _env(allow=ALLOW),
    )


@pytest.mark.parametrize(
    ("request_", "env"),
    [
        (BackendRequest("e", "http"), _env(allow=ALLOW)),
        (BackendRequest("e", "pipe", egress=ALLOW), _env()),
        (BackendRequest("e", "rpc", egress=ALLOW), _env(network=True)),
    ],
)
def test_docker_runs_an_allow_list_backend_without_network_behind_the_proxy(
    request_: BackendRequest, env: EnvironmentRow
) -> None:
    planned = _docker(request_, env)
    assert isinstance(planned, docker_plan.DockerPlan)
    spec, row = planned.spec, planned.row
    assert spec.network is None  # network_mode none: no interface but loopback
    assert row.config.egress_allow == tuple(ALLOW.allow)
    assert row.config.egress_token_sha256 == token_digest("egress-token")
    assert row.egress.mode == "allow_list"
    mounts = dict(spec.egress.values())
    assert mounts == {
        "/run/beephost-egress": "ro",
        "/run/beephost-egress-trust": "ro",
    }
    prefix = f"BEEPHOST_{request_.type.upper()}_BACKEND_"
    assert spec.environment[prefix + "EGRESS_SOCKET"] == (
        "/run/beephost-egress/proxy.sock"
    )
    worker = json.loads(spec.environment[prefix + "WORKER_ENV"])
    assert worker["HTTPS_PROXY"] == (
        "http://b-0123456789ab:egress-token@127.0.0.1:3128"
    )
    assert "PIP_INDEX_URL" not in worker  # no network of its own
    if request_.type != "pipe":
        assert planned.relay is not None  # its port, published by its relay


def test_a_cidr_helper_matches_ipaddress() -> None:
    # The settings' ranges are ipaddress networks: a typo is refused at start-up.
    assert parse_internal_ranges({"a": "10.0.0.0/8"}) == {
        "a": ipaddress.ip_network("10.0.0.0/8")
    }
    with pytest.raises(ValueError, match="internal range a"):
        Settings(egress_internal_ranges={"a": "10.0.0.0/33"})
    with pytest.raises(ValueError, match="internal range name"):
        Settings(egress_internal_ranges={"Bad Name": "10.0.0.0/8"})


@pytest.mark.parametrize(
    ("body", "accepted"),
    [
        ({"egress": {"allow": [{"host": "api.example.com"}]}}, True),
        ({"egress": {"allow": [{"cidr": "203.0.113.0/24"}]}}, True),
        ({"egress": {"allow": [{"host": "api.example.com", "cidr": None}]}}, True),
        ({"egress": {"allow": [{}]}}, False),
        ({"egress": {"allow": [{"host": None}]}}, False),
        (
            {"egress": {"allow": [{"host": "api.example.com", "cidr": "1.2.3.0/24"}]}},
            False,
        ),
        ({"network": True, "egress": {"allow": [{"host": "a.example.com"}]}}, False),
        ({"network": False, "egress": {"allow": [{"host": "a.example.com"}]}}, True),
        ({"network": True, "egress": None}, True),
    ],
)
def test_the_openapi_schema_says_what_the_model_checks(
    body: dict[str, object], accepted: bool
) -> None:
    # A request the schema calls valid is never refused for its shape (schemathesis'
    # positive-data check), and one it calls invalid is refused.
    document = {"name": "e", **body}
    schema = EnvironmentCreate.model_json_schema()
    assert jsonschema.Draft202012Validator(schema).is_valid(document) is accepted
    try:
        EnvironmentCreate.model_validate(document)
    except ValidationError:
        assert not accepted
    else:
        assert accepted


@pytest.mark.parametrize(
    ("body", "accepted"),
    [
        ({"egress": {"allow": [{"host": "a.example.com"}]}}, True),
        ({"egress": {"allow": [{"host": "a.example.com"}]}, "options": {}}, True),
        (
            {"egress": {"allow": [{"host": "a.example.com"}]}, "options": None},
            True,
        ),
        (
            {
                "egress": {"allow": [{"host": "a.example.com"}]},
                "options": {"network": False},
            },
            False,
        ),
        ({"egress": None, "options": {"network": True}}, True),
    ],
)
def test_a_starts_schema_says_what_the_model_checks(
    body: dict[str, object], accepted: bool
) -> None:
    document = {"environment": "e", "type": "http", **body}
    schema = BackendCreate.model_json_schema()
    assert jsonschema.Draft202012Validator(schema).is_valid(document) is accepted
    try:
        BackendCreate.model_validate(document)
    except ValidationError:
        assert not accepted
    else:
        assert accepted

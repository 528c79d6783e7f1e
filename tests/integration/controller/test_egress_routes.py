"""Egress policies and stored secrets on a real controller (uvicorn, SQLite, the SDK):
the policy stored with an environment and shown, a start's own policy, the refusals
in the API's error shape, an allow-list backend run behind the egress proxy (its
configuration, its refusals through the route, the SDK and the metrics), and secrets
that go in and never come out (not in a reply, an error or the log). Containers come
from an in-memory engine under the real Docker plan.
"""

import http.client
import json
import logging
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from beephost_controller.specs import ContainerSpec
from beephost_protocol.errors import (
    Conflict,
    InvalidRequest,
    NotFound,
    Unauthorized,
)
from tests.integration.controller.test_backend_routes import (
    TOKEN,
    Live,
    _ready_env,
    _serve,
    root,  # noqa: F401  # the fixture the live servers here use
)

WEATHER = {"allow": [{"host": "api.weather.example", "ports": [443]}]}
#: A value no other part of the test writes: found anywhere, it leaked.
VALUE = "sk-live-4f1c2a9e7d3b5a60c8e1f2a3b4c5d6e7"


@pytest.fixture
def live(root: Path) -> Iterator[Live]:  # noqa: F811  # `root` is the fixture above
    yield from _serve(
        root, TOKEN, egress_internal_ranges={"data-service": "10.1.2.0/24"}
    )


def live_root(live: Live) -> Path:
    """The egress proxy's state directory of a live controller."""
    settings = live.app.state.system.settings
    return Path(settings.socket_root) / "egress" / "state"


def _proxy(live: Live) -> str:
    return f"beephost-{live.app.state.system.settings.name}-egress"


def _spec(live: Live, backend_id: str) -> ContainerSpec:
    name = f"beephost-{live.app.state.system.settings.name}-{backend_id}"
    return live.containers.specs[name]


def _proxy_log(backend_id: str) -> str:
    """The proxy's output: one refusal of ``backend_id`` among other lines."""
    line = {
        "event": "egress",
        "kind": "connect",
        "backend": backend_id,
        "destination": "other.test:443",
        "decision": "refused",
        "reason": "other.test is not in the allow-list",
    }
    return (
        "2026-11-26T10:00:00Z Loading script addon.py\n"
        f"2026-11-26T10:00:01.5Z {json.dumps(line)}\n"
    )


def _raw(
    live: Live, method: str, path: str, body: bytes | None, token: str = TOKEN
) -> tuple[int, dict[str, Any]]:
    host, port = live.tcp_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request(
            method,
            path,
            body,
            {"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        response = connection.getresponse()
        raw = response.read()
    finally:
        connection.close()
    return response.status, json.loads(raw) if raw else {}


def test_an_environments_policy_is_stored_shown_and_its_starts_run_behind_the_proxy(
    live: Live,
) -> None:
    with live.client() as api:
        env = api.create_environment("weather", requirements=["six"], egress=WEATHER)
        assert env.egress.mode == "allow_list"
        assert env.network is False
        assert [dict(e) for e in env.egress.allow] == [
            {
                "host": "api.weather.example",
                "cidr": None,
                "ports": [443],
                "secret": None,
            }
        ]
        assert env.job_id is not None
        assert api.wait_job(env.job_id, timeout=30).succeeded
        assert api.environment("weather").egress == env.egress
        # The build made the proxy run, so that the first start does not wait for it.
        assert _proxy(live) in live.containers.specs
        # Docker enforces it: no network of its own, the proxy's socket mounted.
        started = api.start_backend("weather", "http")
        assert started.egress.mode == "allow_list"
        spec = _spec(live, started.id)
        assert spec.network is None
        assert {target for target, _ in spec.egress.values()} == {
            "/run/beephost-egress",
            "/run/beephost-egress-trust",
        }
        proxy = live.containers.specs[_proxy(live)]
        assert proxy.labels["io.beephost.egress.image"] == (
            "beephost/egress-proxy:memory"
        )
        config = json.loads((live_root(live) / "config.json").read_text())
        assert config["backends"][started.id]["allow"][0]["host"] == (
            "api.weather.example"
        )
        # Its refusals, as the proxy logged them: the route, and the SDK.
        assert api.egress_refusals(started.id) == []
        live.containers.output[_proxy(live)] = _proxy_log(started.id)
        (refusal,) = api.egress_refusals(started.id)
        assert refusal.destination == "other.test:443"
        assert refusal.reason == "other.test is not in the allow-list"
        assert refusal.kind == "connect"
        assert refusal.at == pytest.approx(1795687201.5)
        status, raw = _raw(live, "GET", f"/api/v1/backends/{started.id}/egress", None)
        assert status == 200
        assert raw == {
            "backend_id": started.id,
            "mode": "allow_list",
            "refusals": [
                {
                    "at": pytest.approx(1795687201.5),
                    "kind": "connect",
                    "destination": "other.test:443",
                    "reason": "other.test is not in the allow-list",
                }
            ],
        }
        # The proxy's counters on the controller's own /metrics (none counted here).
        host, port = live.tcp_url.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        try:
            connection.request("GET", "/metrics")
            metrics = connection.getresponse().read().decode()
        finally:
            connection.close()
        assert 'beephost_egress_total{decision="allowed"} 0.0' in metrics
        assert 'beephost_egress_total{decision="refused"} 0.0' in metrics
        api.stop_backend(started.id)
        assert (
            started.id
            not in json.loads((live_root(live) / "config.json").read_text())["backends"]
        )
        # A start's own network replaces the environment's allow-list.
        closed = api.start_backend("weather", "pipe", options={"network": False})
        assert (closed.egress.mode, closed.options["network"]) == ("none", False)
        assert api.backend(closed.id).egress.mode == "none"
        # Ensure: the same policy is the same environment, another one is not.
        again = api.ensure_environment("weather", requirements=["six"], egress=WEATHER)
        assert again.job_id == env.job_id
        with pytest.raises(Conflict, match="another definition"):
            api.ensure_environment("weather", requirements=["six"])


def test_a_starts_own_allow_list_replaces_its_environments_policy(
    live: Live,
) -> None:
    with live.client() as api:
        _ready_env(api, "plain")
        own = api.start_backend("plain", "http", egress=WEATHER)
        assert own.egress.mode == "allow_list"
        full = api.start_backend("plain", "pipe", options={"network": True})
        assert full.egress.mode == "full"
        with pytest.raises(InvalidRequest, match="contradict"):
            api.start_backend(
                "plain", "pipe", options={"network": False}, egress=WEATHER
            )
        with pytest.raises(InvalidRequest, match="contradict"):
            api.create_environment("both", network=True, egress=WEATHER)
        assert {b.id for b in api.backends()} == {own.id, full.id}


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"host": "*"}, "egress.allow[0] ('*'): '*' alone"),
        ({"host": "*.com"}, "egress.allow[0] ('*.com'): '*.com' would allow"),
        ({"host": "*.co.uk"}, "public suffix 'co.uk'"),
        ({"host": "Bad_Name.example"}, "not a host name"),
        ({"cidr": "169.254.169.254/32"}, "cloud metadata address"),
        ({"cidr": "10.9.0.0/16"}, "a private address (RFC 1918)"),
        ({"cidr": "127.0.0.0/8"}, "a loopback address"),
        ({"host": "api.example.com", "ports": [70000]}, "ports.0"),
        ({"host": "api.example.com", "cidr": "203.0.113.0/24"}, "exactly one"),
    ],
)
def test_refused_entries_get_the_documented_error(
    live: Live, entry: dict[str, object], message: str
) -> None:
    with live.client() as api:
        _ready_env(api, "any")
    for path, body in (
        ("/api/v1/environments", {"name": "refused", "egress": {"allow": [entry]}}),
        (
            "/api/v1/backends",
            {"environment": "any", "type": "pipe", "egress": {"allow": [entry]}},
        ),
    ):
        status, reply = _raw(live, "POST", path, json.dumps(body).encode())
        assert status == 400, reply
        assert reply["error"]["code"] == "invalid_request"
        assert message in reply["error"]["message"]
    with live.client() as api:
        assert [e.name for e in api.environments()] == ["any"]
        assert api.backends() == []


def test_an_internal_range_the_operator_names_may_be_allowed(live: Live) -> None:
    with live.client() as api:
        env = api.create_environment(
            "inside", egress={"allow": [{"cidr": "10.1.2.0/28", "ports": [5432]}]}
        )
        assert env.egress.allow[0]["cidr"] == "10.1.2.0/28"
        with pytest.raises(InvalidRequest, match="EGRESS_INTERNAL_RANGES"):
            api.create_environment(
                "outside", egress={"allow": [{"cidr": "10.1.3.0/28"}]}
            )


def test_a_start_naming_a_secret_that_is_not_stored_is_refused(live: Live) -> None:
    keyed = {
        "allow": [{"host": "api.weather.example", "secret": {"secret": "weather-key"}}]
    }
    with live.client() as api:
        # Made before its secret: secrets are looked up at each start.
        env = api.create_environment("keyed", requirements=["six"], egress=keyed)
        assert env.job_id is not None
        api.wait_job(env.job_id, timeout=30)
        with pytest.raises(InvalidRequest) as missing:
            api.start_backend("keyed", "http")
        assert "not stored: weather-key" in missing.value.message
        assert missing.value.data == {"secrets": ["weather-key"]}
        api.set_secret("weather-key", VALUE)
        # Stored: the proxy's configuration (0600) holds its value, nothing else.
        keyed_backend = api.start_backend("keyed", "http")
        path = live_root(live) / "config.json"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert json.loads(path.read_text())["secrets"] == {"weather-key": VALUE}
        assert VALUE not in json.dumps(_spec(live, keyed_backend.id).environment)
        api.delete_secret("weather-key")
        with pytest.raises(InvalidRequest, match="not stored"):
            api.start_backend("keyed", "http")


@pytest.fixture
def access_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every record of the controller and of uvicorn's access log (which does not
    propagate to the root logger), down to DEBUG."""
    caplog.set_level(logging.DEBUG)
    access = logging.getLogger("uvicorn.access")
    level = access.level
    access.setLevel(logging.INFO)
    access.addHandler(caplog.handler)
    try:
        yield caplog
    finally:
        access.removeHandler(caplog.handler)
        access.setLevel(level)


def test_secrets_go_in_and_never_come_out(
    live: Live,
    root: Path,  # noqa: F811  # the fixture imported above
    access_log: pytest.LogCaptureFixture,
) -> None:
    with live.client() as api:
        stored = api.set_secret("weather-key", VALUE)
        assert stored.name == "weather-key"
        assert stored.updated_at > 0
        assert [s.name for s in api.secrets()] == ["weather-key"]
        replaced = api.set_secret("weather-key", VALUE + "-2")
        assert replaced.updated_at >= stored.updated_at
        with pytest.raises(NotFound):
            api.delete_secret("nothing")
        for bad_name in ("Bad Name", "../escape", "-x"):
            with pytest.raises((InvalidRequest, NotFound)):
                api.set_secret(bad_name, VALUE)
    directory = root / "secrets"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE((directory / "weather-key").stat().st_mode) == 0o600
    assert (directory / "weather-key").read_text() == VALUE + "-2"
    assert [p.name for p in directory.iterdir()] == ["weather-key"]
    # No route returns a value: not the listing, not a GET of one secret.
    status, listing = _raw(live, "GET", "/api/v1/secrets", None)
    assert status == 200
    assert VALUE not in json.dumps(listing)
    status, reply = _raw(live, "GET", "/api/v1/secrets/weather-key", None)
    assert status == 405
    assert VALUE not in json.dumps(reply)
    # A wrong request that carries the value gets an error that does not echo it.
    for body in (
        {"value": VALUE + "\n"},
        {"value": VALUE, "extra": 1},
        {"value": [VALUE]},
        {"secret": VALUE},
        {"value": VALUE + "x" * 8192},
    ):
        status, reply = _raw(
            live, "PUT", "/api/v1/secrets/weather-key", json.dumps(body).encode()
        )
        assert (status, reply["error"]["code"]) == (400, "invalid_request"), reply
        assert VALUE not in json.dumps(reply)
    status, reply = _raw(
        live, "PUT", "/api/v1/secrets/weather-key", b'{"value": "' + VALUE.encode()
    )
    assert status == 400
    assert VALUE not in json.dumps(reply)
    status, reply = _raw(
        live, "PUT", "/api/v1/secrets/Bad%20Name", json.dumps({"value": VALUE}).encode()
    )
    assert (status, reply["error"]["code"]) == (400, "invalid_request")
    assert VALUE not in json.dumps(reply)
    with live.client() as api:
        api.delete_secret("weather-key")
        assert api.secrets() == []
    assert VALUE not in access_log.text
    assert "PUT /api/v1/secrets/weather-key" in access_log.text, "nothing was logged"


def test_an_admin_backends_token_neither_stores_nor_attaches_secrets(
    live: Live,
) -> None:
    with live.client() as api:
        api.admin_environment()
        admin_env = api.environment("admin")
        assert admin_env.job_id is not None
        api.wait_job(admin_env.job_id, timeout=30)
        admin = api.start_backend("admin", "pipe")
        _ready_env(api, "plain")
    scoped = live.worker_env(admin.id)["BEEPHOST_CONTROLLER_TOKEN"]
    keyed = {"allow": [{"host": "evil.example", "secret": {"secret": "weather-key"}}]}
    with live.client(scoped, unix=True) as inside:
        with pytest.raises(Unauthorized):
            inside.set_secret("weather-key", VALUE)
        with pytest.raises(Unauthorized):
            inside.secrets()
        with pytest.raises(Unauthorized, match="controller's token"):
            inside.create_environment("exfiltrate", egress=keyed)
        with pytest.raises(Unauthorized, match="controller's token"):
            inside.start_backend("plain", "http", egress=keyed)
        # An allow-list without a secret is the scoped token's to ask for.
        assert inside.start_backend("plain", "http", egress=WEATHER).egress.mode == (
            "allow_list"
        )


def test_a_controller_restarted_keeps_policies_and_knows_its_secrets(
    root: Path,  # noqa: F811  # the fixture imported above
) -> None:
    for live in _serve(root, TOKEN):
        with live.client() as api:
            api.create_environment("weather", egress=WEATHER)
            api.set_secret("weather-key", VALUE)
    for live in _serve(root, TOKEN):
        with live.client() as api:
            assert api.environment("weather").egress.allow[0]["ports"] == [443]
            assert [s.name for s in api.secrets()] == ["weather-key"]
        # The new run's log filter learned the stored value at start-up.
        redactor = live.app.state.system.redactor
        assert redactor.redact(f"oops: {VALUE}") == "oops: [redacted]"

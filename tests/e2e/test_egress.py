"""Egress allow-lists enforced on Docker, end to end, on a fake internet
(tests/e2e/fake_internet.py): a controller process, and the compose system scripts/up
brings up (``ON_BOTH``).

An operator stores a secret and creates an environment whose allow-list names
``api.allowed.test`` with the secret attached and the other test names without one; a
pipe backend runs on it (user code through the SDK), beside an http backend (another
sandbox, whose port must be out of reach). From inside the sandbox: allowed HTTPS with
``requests`` (the server sees the secret, the sandbox only its marker), plain HTTP with
``urllib``, ``httpx`` HTTPS end to end (the server's own certificate); every escape of
tests/e2e/egress_escapes.py refused with its own error; the secret nowhere in the
sandbox nor in any log; the refusals in ``egress_refusals``, ``beep-host status`` and
``/metrics``.
"""

import re
import secrets
import shutil
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from beephost_client import Client
from beephost_client.controller import Backend, ControllerClient
from tests.e2e import egress_fixtures
from tests.e2e.compose_system import ComposeController
from tests.e2e.controller_process import (
    ON_BOTH,
    ControllerProcess,
    ControllerTarget,
    beep_host,
)
from tests.e2e.egress_escapes import (
    ESCAPES,
    FAST,
    FIND_SECRET,
    IDS,
    PRELUDE,
    Escape,
    Where,
)
from tests.e2e.fake_internet import (
    ALLOWED,
    MARKER,
    MARKER_VARIABLE,
    OTHER,
    SECRET_NAME,
    FakeInternet,
    allow_list,
    sha256,
)
from tests.e2e.processes import run_captured

pytestmark = [pytest.mark.docker, ON_BOTH]

#: A value of this run only: found anywhere, it leaked.
SECRET = f"sk-fake-{secrets.token_hex(20)}"
ENVIRONMENT = "egress"
REQUIREMENTS = ["requests", "httpx"]
#: Where user code finds the proxy: the backend's relay on its own loopback.
PROXY_PORT = 3128


# -- the two worlds, on one fake internet ------------------------------------------


internet = egress_fixtures.internet
controller = egress_fixtures.controller


@pytest.fixture(scope="module")
def compose_controller(
    internet: FakeInternet, docker_cli: str
) -> Iterator[ComposeController]:
    """A compose system of its own, its settings in compose's environment: the proxy
    on the fake internet, trusting the test CA (copied where the controller's
    container sees it: its socket root, mounted at the same path)."""
    from tests.e2e.compose_system import compose_system

    def settings(socket_root: Path) -> dict[str, str]:
        ca = socket_root / "test-upstream-ca.pem"
        shutil.copy(internet.ca_file, ca)
        ca.chmod(0o644)
        return internet.compose_settings(ca)

    with compose_system("beephost-e2e-egress", settings=settings) as compose:
        yield ComposeController(compose, docker_cli)


@dataclass
class Sandbox:
    """The allow-list sandbox, its neighbour, and what the escapes name."""

    target: ControllerTarget
    api: ControllerClient
    backend: Backend
    neighbour: Backend
    client: Client
    where: Where

    def run(self, code: str, timeout: float = 60) -> object:
        """Run ``code`` after the escapes' helpers; its trailing expression's value."""
        return self.client.execute(PRELUDE + "\n" + code, timeout=timeout).value


@pytest.fixture(scope="module")
def sandbox(
    api: ControllerClient, controller_target: ControllerTarget, internet: FakeInternet
) -> Iterator[Sandbox]:
    api.set_secret(SECRET_NAME, SECRET)
    env = api.ensure_environment(
        ENVIRONMENT, requirements=REQUIREMENTS, egress={"allow": allow_list()}
    )
    if env.job_id is not None:
        job = api.wait_job(env.job_id, timeout=900)
        assert job.succeeded, job.error
    started: list[Backend] = []
    try:
        started.append(api.start_backend(ENVIRONMENT, "pipe"))
        started.append(api.start_backend(ENVIRONMENT, "http"))
        backend, neighbour = (api.wait_backend(b.id, timeout=120) for b in started)
        assert backend.status == neighbour.status == "ready"
        neighbour_port = urllib.parse.urlsplit(neighbour.endpoint or "").port
        controller_port = urllib.parse.urlsplit(controller_target.url).port
        assert neighbour_port
        assert controller_port
        where = Where(
            api=internet.addresses[ALLOWED],
            gateway=internet.gateway,
            private=internet.private_address,
            controller_port=controller_port,
            neighbour_port=neighbour_port,
        )
        with api.connect_backend(backend.id) as client:
            yield Sandbox(controller_target, api, backend, neighbour, client, where)
    finally:
        for backend in started:
            api.stop_backend(backend.id)


# -- allowed --------------------------------------------------------------------------


def test_the_sandbox_is_given_the_proxy_and_a_marker_only(sandbox: Sandbox) -> None:
    seen = sandbox.run(
        "{k: v for k, v in os.environ.items() if 'PROXY' in k.upper() "
        "or k in ('SSL_CERT_FILE', 'REQUESTS_CA_BUNDLE', 'PIP_CERT', "
        f"'CURL_CA_BUNDLE', {MARKER_VARIABLE!r})}}"
    )
    assert isinstance(seen, dict)
    assert seen[MARKER_VARIABLE] == MARKER
    proxy = urllib.parse.urlsplit(seen["HTTPS_PROXY"])
    assert (proxy.hostname, proxy.port) == ("127.0.0.1", PROXY_PORT)
    assert proxy.username == sandbox.backend.id
    for name in ("HTTP_PROXY", "http_proxy", "https_proxy"):
        assert seen[name] == seen["HTTPS_PROXY"]
    assert set(seen["NO_PROXY"].split(",")) == {"localhost", "127.0.0.1", "::1"}
    bundle = seen["SSL_CERT_FILE"]
    for name in ("REQUESTS_CA_BUNDLE", "PIP_CERT", "CURL_CA_BUNDLE"):
        assert seen[name] == bundle


def test_allowed_https_with_requests_carries_the_secret_it_never_saw(
    sandbox: Sandbox,
) -> None:
    answer = sandbox.run(
        "import requests\n"
        f"_marker = os.environ[{MARKER_VARIABLE!r}]\n"
        f"_reply = requests.get('https://{ALLOWED}/weather?city=x', timeout=15, "
        "headers={'Authorization': f'Bearer {_marker}'})\n"
        "{'status': _reply.status_code, 'json': _reply.json()}"
    )
    assert isinstance(answer, dict)
    assert answer["status"] == 200
    seen = answer["json"]
    assert (seen["server"], seen["scheme"]) == (ALLOWED, "https")
    assert seen["path"] == "/weather?city=x"
    # The server got the secret in place of the marker; not the proxy's credential.
    assert seen["authorization_sha256"] == sha256(f"Bearer {SECRET}")
    assert "Proxy-Authorization" not in seen["headers"]


def test_plain_http_with_urllib(sandbox: Sandbox) -> None:
    answer = sandbox.run(
        f"_marker = os.environ[{MARKER_VARIABLE!r}]\n"
        "def _fetch(url):\n"
        "    request = urllib.request.Request(\n"
        "        url, headers={'Authorization': f'Bearer {_marker}'})\n"
        "    with urllib.request.urlopen(request, timeout=15) as reply:\n"
        "        return json.load(reply)\n"
        f"[_fetch('http://{OTHER}/plain'), _fetch('http://{ALLOWED}/plain')]"
    )
    assert isinstance(answer, list)
    other, allowed = answer
    assert (other["server"], other["scheme"]) == (OTHER, "http")
    # Another destination gets the marker as it was sent: it means nothing there.
    assert other["authorization_sha256"] == sha256(f"Bearer {MARKER}")
    assert (allowed["server"], allowed["scheme"]) == (ALLOWED, "http")
    assert allowed["authorization_sha256"] == sha256(f"Bearer {SECRET}")
    for seen in answer:
        assert "Proxy-Authorization" not in seen["headers"]


def test_httpx_https_is_end_to_end_with_the_servers_own_certificate(
    sandbox: Sandbox, internet: FakeInternet
) -> None:
    ca = internet.ca_file.read_text()
    answer = sandbox.run(
        "import httpx\n"
        # The fake internet's CA is no public one: trusted here beside the bundle.
        "_context = ssl.create_default_context(cafile=os.environ['SSL_CERT_FILE'])\n"
        f"_context.load_verify_locations(cadata={ca!r})\n"
        "with httpx.Client(verify=_context, timeout=15) as _http:\n"
        f"    _reply = _http.get('https://{OTHER}/e2e')\n"
        "    _tls = _reply.extensions['network_stream'].get_extra_info('ssl_object')\n"
        "    _issuer = dict(x[0] for x in _tls.getpeercert()['issuer'])\n"
        "{'json': _reply.json(), 'issuer': _issuer['commonName']}"
    )
    assert isinstance(answer, dict)
    assert (answer["json"]["server"], answer["json"]["scheme"]) == (OTHER, "https")
    assert answer["issuer"] == internet.ca.common_name


def test_a_tunnel_with_a_secret_is_intercepted_by_the_controllers_ca(
    sandbox: Sandbox, internet: FakeInternet
) -> None:
    # The sandbox's bundle trusts the proxy's CA (and public ones), not the test CA:
    # the intercepted tunnel verifies with it alone, and names its issuer.
    answer = sandbox.run(
        "_url = urllib.parse.urlsplit(os.environ['HTTPS_PROXY'])\n"
        "_credential = base64.b64encode(\n"
        "    f'{_url.username}:{_url.password}'.encode()).decode()\n"
        "_raw = socket.create_connection((_url.hostname, _url.port), timeout=10)\n"
        f"_raw.sendall(b'CONNECT {ALLOWED}:443 HTTP/1.1\\r\\nHost: {ALLOWED}:443\\r\\n'\n"
        "    + f'Proxy-Authorization: Basic {_credential}\\r\\n\\r\\n'.encode())\n"
        "_head = b''\n"
        "while b'\\r\\n\\r\\n' not in _head:\n"
        "    _head += _raw.recv(4096)\n"
        "_context = ssl.create_default_context(cafile=os.environ['SSL_CERT_FILE'])\n"
        f"with _context.wrap_socket(_raw, server_hostname={ALLOWED!r}) as _tls:\n"
        "    _issuer = dict(x[0] for x in _tls.getpeercert()['issuer'])\n"
        "_issuer['commonName']"
    )
    assert isinstance(answer, str)
    assert answer
    assert answer != internet.ca.common_name


# -- refused ---------------------------------------------------------------------------


@pytest.mark.parametrize("escape", ESCAPES, ids=IDS)
def test_an_escape_is_refused_fast_with_its_error(
    sandbox: Sandbox, escape: Escape
) -> None:
    code, expect = escape.render(sandbox.where)
    answer = sandbox.run(code)
    assert isinstance(answer, dict)
    assert expect.search(answer["outcome"]), (
        f"{escape.case}: {answer['outcome']!r} does not match {expect.pattern!r}"
    )
    assert answer["seconds"] < FAST, f"{escape.case}: took {answer['seconds']} s"


# -- the secret, nowhere ----------------------------------------------------------------


def test_the_secret_appears_nowhere_in_the_sandbox(sandbox: Sandbox) -> None:
    # Sent reversed: the code itself (wherever the server keeps it) never holds it.
    answer = sandbox.run(
        FIND_SECRET + f"_scan({SECRET[::-1]!r}[::-1].encode())", timeout=300
    )
    assert isinstance(answer, dict)
    assert answer["files"] > 100, "the scan read the sandbox's files"
    assert answer["found"] == [], f"the secret is readable in the sandbox: {answer}"


def controller_log(target: ControllerTarget) -> str:
    if isinstance(target, ControllerProcess):
        return target.log_path.read_text(errors="replace")
    assert isinstance(target, ComposeController)
    return target.compose.run("logs", "--no-color", "controller")


def container_log(docker_cli: str, container: str) -> str:
    result = run_captured([docker_cli, "logs", container], timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout + result.stderr


def proxy_container(target: ControllerTarget) -> str:
    """The controller's egress proxy: ``beephost-<CONTROLLER_NAME>-egress``."""
    return f"beephost-{target.name}-egress"


def test_the_secret_is_in_no_log(sandbox: Sandbox, docker_cli: str) -> None:
    target = sandbox.target
    logs = {
        "controller": controller_log(target),
        "proxy": container_log(docker_cli, proxy_container(target)),
    }
    for backend in (sandbox.backend, sandbox.neighbour):
        logs[f"backend {backend.id} (API)"] = sandbox.api.backend_logs(backend.id)
        assert backend.container_id
        logs[f"backend {backend.id} (docker)"] = container_log(
            docker_cli, backend.container_id
        )
    # The proxy logged the decisions (so the check read a log that says things).
    assert '"decision": "refused"' in logs["proxy"]
    leaked = [where for where, text in logs.items() if SECRET in text]
    assert leaked == [], f"the secret is in these logs: {leaked}"


# -- audit ---------------------------------------------------------------------------


def test_refusals_are_told_by_the_sdk_the_cli_and_metrics(sandbox: Sandbox) -> None:
    refusals = sandbox.api.egress_refusals(sandbox.backend.id, limit=100)
    destinations = {r.destination for r in refusals}
    # A name off the list, an allowed name on another port, a rebinding name.
    for expected in ("elsewhere.test:443", "other.test:8443", "loopback.test:80"):
        assert expected in destinations, f"{expected} not in {sorted(destinations)}"
    # (A refused credential is no backend's: the proxy trusts no id it came with.)
    kinds = {r.kind for r in refusals}
    assert {"connect", "http", "tls"} <= kinds, kinds
    for refusal in refusals:
        assert refusal.reason
        assert refusal.at is not None
        assert SECRET not in refusal.reason
    status = beep_host(sandbox.target, "status", sandbox.backend.id)
    assert status.returncode == 0, status.stderr
    assert "egress refusals" in status.stdout, status.stdout
    assert refusals[-1].destination in status.stdout, status.stdout
    metrics = sandbox.api.metrics()
    counts = dict(
        re.findall(r'^beephost_egress_total\{decision="(\w+)"\} (\S+)$', metrics, re.M)
    )
    assert float(counts["refused"]) >= len(ESCAPES) // 2, counts
    assert float(counts["allowed"]) >= 4, counts

"""A fake internet on this machine: test servers in containers on a Docker network with
no route off it, and the names the egress proxy resolves for them.

The network is ``internal`` (Docker gives it no default route and no masquerade: a
container on it reaches the other containers on it and nothing else). On it:

- ``api.allowed.test``: HTTPS on 443 with a certificate of the session's test CA
  (tests/certs.py) and HTTP on 80, answering every request with its headers as JSON
  (tests/e2e/fake_server.py), so a test sees whether a secret arrived;
- ``other.test``: the same, a destination allowed without a secret;
- ``internal.test``: an internal service (plain TCP on 8080) no sandbox may reach.

The servers run the session's base image (its Debian python3; the engine starts
empty, no registry), hardened, as this process's user. The proxy joins the network
(the controller's ``EGRESS_PROXY_NETWORK``) and resolves names from its host map
(``EGRESS_HOSTS``), which also holds the rebinding names: one per address a name must
never lead to (loopback, the controller's, the metadata server's, a private one) and
one with a good and a loopback answer. The servers' subnet is the operator's internal
range ``fake-internet`` (``EGRESS_INTERNAL_RANGES``): private, like every Docker
network, and allowed for this test only.

Everything carries ``io.beephost.test.fake-internet=<run>``; ``remove()`` removes by
that label, so nothing another session made is touched.
"""

import hashlib
import ipaddress
import json
import os
import secrets
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.certs import TestCA
from tests.e2e.containers import docker, inspect, label_args
from tests.e2e.processes import run_captured

if TYPE_CHECKING:  # tests.e2e.session_fixtures imports what imports this module
    from tests.e2e.controller_process import ControllerProcess
    from tests.e2e.session_fixtures import BuiltBackends

#: The label on every object of one fake internet (its run id as the value).
LABEL = "io.beephost.test.fake-internet"
SERVER_SCRIPT = Path(__file__).with_name("fake_server.py")
#: The servers with a web site (HTTPS 443 and HTTP 80).
ALLOWED = "api.allowed.test"
OTHER = "other.test"
WEB_SERVERS = (ALLOWED, OTHER)
#: The internal service, and its (plain TCP) port.
INTERNAL = "internal.test"
INTERNAL_PORT = 8080
#: The metadata server's address (nothing listens there: a name must not lead to it).
METADATA = "169.254.169.254"
#: Names the proxy must refuse whatever a policy says: the address each resolves to is
#: one no sandbox may reach (``rebinding``). Filled in by ``FakeInternet.hosts``.
REBINDING = (
    "loopback.test",
    "controller.test",
    "metadata.test",
    "private.test",
    "rebind.test",
)
#: The stored secret the tests' policy attaches to ALLOWED, and the variable user code
#: holds instead of it (its marker: meaningless anywhere but to the proxy).
SECRET_NAME = "fake-api-key"
MARKER_VARIABLE = "FAKE_API_KEY"
MARKER = f"beephost-secret:{SECRET_NAME}"


def allow_list() -> list[dict[str, object]]:
    """The tests' policy: ALLOWED with the secret, OTHER without, and every rebinding
    name (allowed by name, so that the proxy's address checks are what refuse it)."""
    rules: list[dict[str, object]] = [
        {"host": ALLOWED, "secret": {"secret": SECRET_NAME}},
        {"host": OTHER},
    ]
    return rules + [{"host": name} for name in REBINDING]


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


#: The operator's internal range that allows the fake internet's private subnet.
RANGE_NAME = "fake-internet"
#: Where the servers find their certificates and script.
SERVER_DIR = "/srv/fake"


@dataclass
class FakeInternet:
    """One fake internet: its network, servers, CA and names."""

    docker_cli: str
    image: str
    run: str
    directory: Path
    ca: TestCA
    network: str = ""
    subnet: str = ""
    gateway: str = ""
    #: Server name -> its address on the network.
    addresses: dict[str, str] = field(default_factory=dict)
    #: Server name -> its container id.
    containers: dict[str, str] = field(default_factory=dict)

    @property
    def labels(self) -> dict[str, str]:
        return {LABEL: self.run, "io.beephost.test.run": f"fake-internet-{self.run}"}

    @property
    def ca_file(self) -> Path:
        """The test CA's certificate (PEM): what trusts the servers."""
        return self.directory / "ca.pem"

    @property
    def private_address(self) -> str:
        """A private address outside the fake internet's subnet (so outside its
        internal range): a name leading there must be refused."""
        subnet = ipaddress.ip_network(self.subnet)
        for candidate in ("10.255.255.254", "192.168.255.254", "172.31.255.254"):
            if ipaddress.ip_address(candidate) not in subnet:
                return candidate
        raise AssertionError(f"no private address outside {subnet}")

    def hosts(self) -> dict[str, list[str]]:
        """The proxy's host map (``EGRESS_HOSTS``): every server's name, and the
        rebinding names (each must be refused: loopback, the controller's host, the
        metadata server, a private address, and a good answer beside a loopback)."""
        names = {name: [address] for name, address in self.addresses.items()}
        names.update(
            {
                "loopback.test": ["127.0.0.1"],
                # The network's gateway is this host: where a local controller runs
                # (and the proxy's ``blocked`` holds it, as the controller's).
                "controller.test": [self.gateway],
                "metadata.test": [METADATA],
                "private.test": [self.private_address],
                "rebind.test": [self.addresses[ALLOWED], "127.0.0.1"],
            }
        )
        return names

    def internal_ranges(self) -> dict[str, str]:
        return {RANGE_NAME: self.subnet}

    def controller_settings(self, upstream_ca: Path | None = None) -> dict[str, str]:
        """The controller settings (without their ``BEEPHOST_CONTROLLER_`` prefix)
        that put its egress proxy on this network, trusting this CA upstream."""
        return {
            "EGRESS_PROXY_NETWORK": self.network,
            "EGRESS_HOSTS": json.dumps(self.hosts()),
            "EGRESS_INTERNAL_RANGES": json.dumps(self.internal_ranges()),
            "EGRESS_UPSTREAM_CA_BUNDLE": str(upstream_ca or self.ca_file),
        }

    def compose_settings(self, upstream_ca: Path) -> dict[str, str]:
        """The same for compose's .env (``BEEPHOST_EGRESS_*``): ``upstream_ca`` is a
        path the controller's container sees (under its socket root)."""
        return {
            f"BEEPHOST_{key}": value
            for key, value in self.controller_settings(upstream_ca).items()
        }

    def container_run(self, code: str, timeout: float = 60) -> tuple[int, str]:
        """Run ``code`` (python3) in a one-off container on the network, with the CA
        mounted at /srv/fake/ca.pem: (exit status, stdout + stderr)."""
        result = run_captured(
            [
                self.docker_cli,
                "run",
                "--rm",
                *label_args(self.labels),
                f"--network={self.network}",
                "--read-only",
                "--cap-drop=ALL",
                "--security-opt=no-new-privileges",
                f"--user={os.getuid()}:{os.getgid()}",
                "-v",
                f"{self.directory}:{SERVER_DIR}:ro",
                self.image,
                "python3",
                "-c",
                code,
            ],
            timeout=timeout,
        )
        return result.returncode, result.stdout + result.stderr

    def server_log(self, name: str) -> str:
        """What a server printed (one line per request)."""
        result = run_captured(
            [self.docker_cli, "logs", self.containers[name]], timeout=30
        )
        return result.stdout + result.stderr

    # -- making and removing ------------------------------------------------------

    def create(self) -> None:
        """The network, then the servers (``create_network``, ``start_servers``)."""
        self.create_network()
        self.start_servers()

    def create_network(self) -> None:
        """The certificates and the network, and each server's address on it (fixed:
        a controller can be given the host map before the servers run)."""
        self.ca.write_ca(self.directory)
        shutil.copy(SERVER_SCRIPT, self.directory / SERVER_SCRIPT.name)
        for name in WEB_SERVERS:
            self.ca.write_server(self.directory, [name])
        # Readable by the servers' user (this process's) only; the directory too.
        self.directory.chmod(0o700)
        self.network = f"beephost-fake-internet-{self.run}"
        # A subnet of our choosing (fixed addresses need one): a /24 of 10.199/16
        # that no network of the engine's holds yet (the engine refuses an overlap).
        last = ""
        for _ in range(16):
            subnet = f"10.199.{secrets.randbelow(256)}.0/24"
            result = run_captured(
                [
                    self.docker_cli,
                    "network",
                    "create",
                    "--internal",
                    f"--subnet={subnet}",
                    *label_args(self.labels),
                    self.network,
                ],
                timeout=60,
            )
            if result.returncode == 0:
                break
            last = result.stderr
        else:
            raise AssertionError(f"no free subnet for the fake internet: {last}")
        config = inspect(self.docker_cli, self.network, "network")["IPAM"]["Config"][0]
        self.subnet = config["Subnet"]
        hosts = [str(a) for a in ipaddress.ip_network(self.subnet).hosts()]
        self.gateway = config.get("Gateway") or hosts[0]
        # The top of the range: the engine hands out the bottom (the proxy's address).
        for name, address in zip((*WEB_SERVERS, INTERNAL), hosts[-3:], strict=True):
            self.addresses[name] = address

    def start_servers(self, image: str | None = None) -> None:
        """The servers, at their addresses, until each serves."""
        self.image = image or self.image
        for name in WEB_SERVERS:
            self._start(
                name,
                "--http",
                "80",
                "--https",
                "443",
                "--cert",
                f"{SERVER_DIR}/{name}.pem",
            )
        self._start(INTERNAL, "--tcp", str(INTERNAL_PORT))
        for name, container in self.containers.items():
            self._wait_serving(name, container)

    def _start(self, name: str, *args: str) -> None:
        container = docker(
            self.docker_cli,
            "run",
            "-d",
            *label_args(self.labels),
            "--name",
            f"beephost-fake-{name.replace('.', '-')}-{self.run}",
            f"--network={self.network}",
            f"--ip={self.addresses[name]}",
            "--network-alias",
            name,
            "--read-only",
            "--cap-drop=ALL",
            "--security-opt=no-new-privileges",
            f"--user={os.getuid()}:{os.getgid()}",
            # Ports 80 and 443 without a capability: the container's own namespace.
            "--sysctl",
            "net.ipv4.ip_unprivileged_port_start=0",
            "--memory=128m",
            "--pids-limit=256",
            "-v",
            f"{self.directory}:{SERVER_DIR}:ro",
            self.image,
            "python3",
            "-u",
            f"{SERVER_DIR}/{SERVER_SCRIPT.name}",
            name,
            *args,
        ).strip()
        self.containers[name] = container

    def join_bridge(self, name: str) -> str:
        """Connect server ``name`` to Docker's default bridge too (where a backend
        with full network is): its address there."""
        container = self.containers[name]
        docker(self.docker_cli, "network", "connect", "bridge", container)
        networks = inspect(self.docker_cli, container)["NetworkSettings"]["Networks"]
        address: str = networks["bridge"]["IPAddress"]
        return address

    def _wait_serving(self, name: str, container: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while "serving" not in self.server_log(name):
            state = inspect(self.docker_cli, container)["State"]
            if state["Status"] != "running" or time.monotonic() > deadline:
                raise AssertionError(
                    f"fake server {name} is not serving ({state['Status']}):\n"
                    f"{self.server_log(name)[-2000:]}"
                )
            time.sleep(0.1)

    def remove(self) -> None:
        """Every container and the network of this fake internet, by its label."""
        selector = f"label={LABEL}={self.run}"
        ids = docker(self.docker_cli, "ps", "-aq", "--filter", selector).split()
        if ids:
            docker(self.docker_cli, "rm", "-f", "-v", *ids, check=False)
        for network in docker(
            self.docker_cli, "network", "ls", "-q", "--filter", selector
        ).split():
            docker(self.docker_cli, "network", "rm", network, check=False)

    def remaining(self) -> list[str]:
        """Objects still carrying this run's label (none after ``remove``)."""
        selector = f"label={LABEL}={self.run}"
        found = docker(self.docker_cli, "ps", "-aq", "--filter", selector).split()
        found += docker(
            self.docker_cli, "network", "ls", "-q", "--filter", selector
        ).split()
        return found


@contextmanager
def fake_internet_network(docker_cli: str) -> Iterator[FakeInternet]:
    """A fake internet's network and addresses, for the block; its servers start
    with ``start_servers(image)`` (a controller can be given ``controller_settings()``
    first and build the image). Removed by its label afterwards."""
    directory = Path(tempfile.mkdtemp(prefix="beephost-fake-internet-"))
    world = FakeInternet(
        docker_cli=docker_cli,
        image="",
        run=uuid.uuid4().hex[:10],
        directory=directory,
        ca=TestCA.make(),
    )
    try:
        world.create_network()
        yield world
    finally:
        world.remove()
        shutil.rmtree(directory, ignore_errors=True)


@contextmanager
def fake_internet(docker_cli: str, image: str) -> Iterator[FakeInternet]:
    """A fake internet of servers running ``image`` (one with python3), for the
    block; removed by its label afterwards, whatever happened."""
    directory = Path(tempfile.mkdtemp(prefix="beephost-fake-internet-"))
    world = FakeInternet(
        docker_cli=docker_cli,
        image=image,
        run=uuid.uuid4().hex[:10],
        directory=directory,
        ca=TestCA.make(),
    )
    try:
        world.create()
        yield world
    finally:
        world.remove()
        shutil.rmtree(directory, ignore_errors=True)


def reply(text: str) -> dict[str, Any]:
    """A fake server's JSON answer, from the text a client printed."""
    data: dict[str, Any] = json.loads(text)
    return data


def headers_of(answer: Mapping[str, Any]) -> dict[str, str]:
    """The request headers a server saw, with lowercase names."""
    return {key.lower(): value for key, value in answer["headers"].items()}


@contextmanager
def egress_controller(
    internet: FakeInternet,
    backends: "BuiltBackends",
    docker_cli: str,
    workdir: Path,
) -> "Iterator[ControllerProcess]":
    """A controller process building into the session's test repositories, its egress
    proxy on ``internet``; afterwards stopped, and everything carrying its name gone
    (its proxy included)."""
    # Imported here: tests.e2e.session_fixtures imports what imports this module.
    from tests.e2e.controller_process import ControllerProcess
    from tests.e2e.session_fixtures import BACKENDS_REPOSITORY
    from tests.ports import free_port

    proc = ControllerProcess(
        workdir=workdir,
        port=free_port(),
        workspace=backends.workspace,
        labels=backends.labels,
        repository=BACKENDS_REPOSITORY,
        docker_cli=docker_cli,
        settings=internet.controller_settings(),
    )
    try:
        proc.start()
        yield proc
    finally:
        proc.stop()
        proc.remove_owned()
        assert proc.owned() == [], "containers left after cleanup"

"""A fake internet on the test cluster: test servers as pods of a namespace of their
own, each behind a Service whose ClusterIP the egress proxy resolves its name to.

The Services come first (``create_services``): their addresses go into the settings
the controller starts with (``controller_settings``: the proxy's host map, each
address as an operator's internal range of one address, and the test CA the proxy
trusts upstream). The servers follow once an image with a Python is on the node
(``start_servers``: the environment image the controller built, which the kubelet
finds on the machine's engine). They are tests/e2e/fake_server.py, as on Docker:
``api.allowed.test`` and ``other.test`` (HTTPS 443 with a certificate of the test CA,
HTTP 80), ``internal.test`` (plain TCP 8080). Everything is in the namespace, which
the caller deletes (``conftest.delete_namespaces``).
"""

import ipaddress
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from kubernetes import client

from tests.certs import TestCA, key_pem, pem
from tests.cluster.conftest import (
    TEST_LABEL,
    Cluster,
    condition,
    containers_removed,
    wait_until,
)
from tests.e2e.fake_internet import (
    ALLOWED,
    INTERNAL,
    INTERNAL_PORT,
    METADATA,
    SERVER_SCRIPT,
    WEB_SERVERS,
)

SERVER_DIR = "/srv/fake"
#: The pods' label with each server's name (its Service's selector).
SERVER_LABEL = "io.beephost.test.fake-server"


def _gone(delete: Callable[[], object]) -> None:
    """Delete; one already gone is fine."""
    try:
        delete()
    except client.ApiException as exc:
        if exc.status != 404:
            raise


def _slug(name: str) -> str:
    return name.replace(".", "-")


@dataclass
class ClusterInternet:
    cluster: Cluster
    namespace: str
    ca: TestCA
    directory: Path
    #: Server name -> its Service's ClusterIP.
    addresses: dict[str, str] = field(default_factory=dict)
    #: The servers' image (``start_servers``).
    image: str = ""

    @property
    def ca_file(self) -> Path:
        return self.directory / "ca.pem"

    def create_namespace(self) -> None:
        self.cluster.core.create_namespace(
            client.V1Namespace(
                metadata=client.V1ObjectMeta(
                    name=self.namespace, labels={TEST_LABEL: "fake-internet"}
                )
            )
        )

    def create_services(self) -> None:
        for name in (*WEB_SERVERS, INTERNAL):
            ports = (
                [(80, "http"), (443, "https")]
                if name in WEB_SERVERS
                else [(INTERNAL_PORT, "tcp")]
            )
            service = self.cluster.core.create_namespaced_service(
                self.namespace,
                client.V1Service(
                    metadata=client.V1ObjectMeta(name=_slug(name)),
                    spec=client.V1ServiceSpec(
                        selector={SERVER_LABEL: _slug(name)},
                        ports=[
                            client.V1ServicePort(name=port_name, port=port)
                            for port, port_name in ports
                        ],
                    ),
                ),
            )
            self.addresses[name] = self.cluster.as_json(service)["spec"]["clusterIP"]

    @property
    def private_address(self) -> str:
        """A private address that is none of the servers'."""
        taken = {ipaddress.ip_address(a) for a in self.addresses.values()}
        for candidate in ("10.255.255.254", "192.168.255.254", "172.31.255.254"):
            if ipaddress.ip_address(candidate) not in taken:
                return candidate
        raise AssertionError("no private address free")

    def hosts(self) -> dict[str, list[str]]:
        """The proxy's host map: the servers, and the names it must refuse."""
        names = {name: [address] for name, address in self.addresses.items()}
        names.update(
            {
                "loopback.test": ["127.0.0.1"],
                "controller.test": [self.cluster.node_ip],
                "metadata.test": [METADATA],
                "private.test": [self.private_address],
                "rebind.test": [self.addresses[ALLOWED], "127.0.0.1"],
            }
        )
        return names

    def controller_settings(self, upstream_ca: str | None = None) -> dict[str, str]:
        """The settings (without ``BEEPHOST_CONTROLLER_``) that point the proxy at
        this internet: only the two web servers' addresses are internal ranges
        (``internal.test`` stays a private address no policy reaches); the proxy
        trusts the test CA upstream (``upstream_ca``: where the controller finds it,
        else ``ca_file``)."""
        self.ca.write_ca(self.directory)
        ranges = {
            f"fake-{_slug(name)}": f"{self.addresses[name]}/32" for name in WEB_SERVERS
        }
        return {
            "EGRESS_HOSTS": json.dumps(self.hosts()),
            "EGRESS_INTERNAL_RANGES": json.dumps(ranges),
            "EGRESS_UPSTREAM_CA_BUNDLE": upstream_ca or str(self.ca_file),
        }

    def start_servers(self, image: str) -> None:
        """The servers' pods, from a local ``image`` with ``python3``, until each is
        ready."""
        self.image = image
        core = self.cluster.core
        core.create_namespaced_config_map(
            self.namespace,
            client.V1ConfigMap(
                metadata=client.V1ObjectMeta(name="fake-server"),
                data={"fake_server.py": SERVER_SCRIPT.read_text()},
            ),
        )
        certificates = {}
        for name in WEB_SERVERS:
            key, cert = self.ca.issue([name], [self.addresses[name]])
            certificates[f"{name}.pem"] = (pem(cert) + key_pem(key)).decode()
        core.create_namespaced_secret(
            self.namespace,
            client.V1Secret(
                metadata=client.V1ObjectMeta(name="fake-certificates"),
                string_data=certificates,
            ),
        )
        for name in WEB_SERVERS:
            self._start(
                name,
                [
                    "--http",
                    "80",
                    "--https",
                    "443",
                    "--cert",
                    f"{SERVER_DIR}/certs/{name}.pem",
                ],
                probe_port=80,
            )
        self._start(INTERNAL, ["--tcp", str(INTERNAL_PORT)], probe_port=INTERNAL_PORT)
        for name in (*WEB_SERVERS, INTERNAL):
            wait_until(f"{name} serving", partial(self._ready, name), timeout=120)

    def stop_servers(self) -> None:
        """The servers' pods, their script and certificates gone (and the kubelet's
        containers: their image can then be removed). The Services stay."""
        core = self.cluster.core
        for name in (*WEB_SERVERS, INTERNAL):
            _gone(
                partial(
                    core.delete_namespaced_pod,
                    _slug(name),
                    self.namespace,
                    grace_period_seconds=0,
                )
            )
        _gone(lambda: core.delete_namespaced_config_map("fake-server", self.namespace))
        _gone(
            lambda: core.delete_namespaced_secret("fake-certificates", self.namespace)
        )
        wait_until(
            "the fake servers' pods gone",
            lambda: not core.list_namespaced_pod(self.namespace).items or None,
            timeout=120,
        )
        wait_until(
            "the fake servers' containers removed",
            lambda: containers_removed(self.namespace) or None,
            timeout=150,
        )

    def _start(self, name: str, args: list[str], probe_port: int) -> None:
        # Root in its own pod, for ports 80 and 443 (a test server, not a sandbox).
        manifest: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": _slug(name),
                "labels": {SERVER_LABEL: _slug(name), TEST_LABEL: "fake-internet"},
            },
            "spec": {
                "automountServiceAccountToken": False,
                "containers": [
                    {
                        "name": "server",
                        "image": self.image,
                        "imagePullPolicy": "Never",
                        "command": [
                            "python3",
                            f"{SERVER_DIR}/script/fake_server.py",
                            name,
                            *args,
                        ],
                        "securityContext": {"runAsUser": 0},
                        "readinessProbe": {
                            "tcpSocket": {"port": probe_port},
                            "periodSeconds": 1,
                        },
                        "volumeMounts": [
                            {"name": "script", "mountPath": f"{SERVER_DIR}/script"},
                            {"name": "certs", "mountPath": f"{SERVER_DIR}/certs"},
                        ],
                    }
                ],
                "volumes": [
                    {"name": "script", "configMap": {"name": "fake-server"}},
                    {"name": "certs", "secret": {"secretName": "fake-certificates"}},
                ],
            },
        }
        self.cluster.core.create_namespaced_pod(self.namespace, manifest)  # type: ignore[arg-type]  # the client takes a dict as well

    def _ready(self, name: str) -> bool | None:
        pod = self.cluster.as_json(
            self.cluster.core.read_namespaced_pod(_slug(name), self.namespace)
        )
        return condition(pod, "Ready") or None

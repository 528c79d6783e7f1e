"""The proxy's settings a fake internet needs (tests/e2e/fake_internet.py): an upstream
CA bundle the proxy trusts instead of the public CAs (``EGRESS_UPSTREAM_CA_BUNDLE``),
and a host that resolves to several addresses (``EGRESS_HOSTS``, each checked)."""

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from beephost_controller.egress_proxy_config import load
from beephost_controller.engine.docker_egress import LABEL_EGRESS_UPSTREAM, DockerEgress
from beephost_controller.images.egress_proxy import PROXY_COMMAND
from beephost_controller.schemas.egress import EgressRule
from beephost_controller.secret_store import SecretStore
from beephost_controller.settings import Settings
from beephost_controller.testing import MemoryContainers, MemoryImageBuilder

CA = b"-----BEGIN CERTIFICATE-----\nMIIB...test...\n-----END CERTIFICATE-----\n"


@pytest.fixture
def root() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="bh-up-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def egress(root: Path, **settings: object) -> tuple[DockerEgress, MemoryContainers]:
    config = Settings(
        socket_root=root,
        database=root / "db.sqlite",
        **settings,  # type: ignore[arg-type]
    )
    containers = MemoryContainers()
    made = DockerEgress(
        config,
        containers,
        MemoryImageBuilder(),
        SecretStore(root / "secrets"),
        euid=1000,
        egid=1000,
        addresses=lambda: [],
        socket_wait=0.5,
    )
    # MemoryContainers makes the proxy's socket when it starts, as serve.py does.
    return made, containers


def test_an_upstream_ca_bundle_is_copied_and_named_to_mitmdump(root: Path) -> None:
    bundle = root / "upstream.pem"
    bundle.write_bytes(CA)
    made, containers = egress(root, egress_upstream_ca_bundle=bundle)
    try:
        made.ensure()
        spec = containers.specs[made.name]
        assert made.paths.upstream_ca.read_bytes() == CA
        assert spec.command == (
            *PROXY_COMMAND,
            "--",
            "--set",
            "ssl_verify_upstream_trusted_ca=/run/egress/upstream-ca.pem",
        )
        assert spec.labels[LABEL_EGRESS_UPSTREAM]
        made.ensure()  # current: kept
        assert containers.starts == [made.name]
        bundle.write_bytes(CA + CA)  # another bundle: the proxy is replaced
        made.ensure()
        assert len(containers.starts) == 2
    finally:
        containers.close()


def test_without_one_the_image_command_and_the_public_cas(root: Path) -> None:
    made, containers = egress(root)
    try:
        made.ensure()
        spec = containers.specs[made.name]
        assert spec.command == ()
        assert spec.labels[LABEL_EGRESS_UPSTREAM] == ""
        assert not made.paths.upstream_ca.exists()
    finally:
        containers.close()


def test_a_host_may_name_several_addresses_each_checked(root: Path) -> None:
    made, _ = egress(
        root,
        egress_hosts={"api.test": "10.1.2.3", "rebind.test": ["10.1.2.3", "127.0.0.1"]},
    )
    made.register("b-1", "a" * 64, [EgressRule(host="api.test")])
    hosts = load(made.paths.config).hosts
    assert hosts == {"api.test": ["10.1.2.3"], "rebind.test": ["10.1.2.3", "127.0.0.1"]}


@pytest.mark.parametrize("answer", [[], ["not-an-address"], "nope"])
def test_a_host_without_a_valid_address_is_refused(answer: object) -> None:
    with pytest.raises(ValidationError, match=r"egress host 'x\.test'"):
        Settings(egress_hosts={"x.test": answer})  # type: ignore[dict-item]

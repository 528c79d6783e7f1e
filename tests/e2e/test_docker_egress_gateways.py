"""What the egress proxy blocks, read from the real engine: the gateways of its
network, named or not (a network created with a subnet and no gateway: the engine gives
it the subnet's first address, which DockerContainers.network_gateways reports).

The one network this module makes carries its own label and is removed by it.
"""

import ipaddress
import uuid
from collections.abc import Iterator

import docker.errors
import pytest

from beephost_controller.engine.docker_containers import DockerContainers
from beephost_controller.engine.docker_images import DockerEngine
from beephost_controller.ports import ContainerEngineError

pytestmark = pytest.mark.docker

RUN = uuid.uuid4().hex[:10]
LABELS = {"io.beephost.test.run": f"egress-gateways-{RUN}"}


@pytest.fixture
def unnamed_gateway(docker_client: DockerEngine) -> Iterator[tuple[str, str]]:
    """A network with a subnet and no gateway named: (its name, its subnet)."""
    client = docker_client._client
    name = f"beephost-test-{RUN}"
    made = None
    for third in range(200, 250):  # a subnet no other network of the engine holds
        subnet = f"10.231.{third}.0/24"
        pool = docker.types.IPAMPool(subnet=subnet)
        try:
            made = client.networks.create(
                name, labels=LABELS, ipam=docker.types.IPAMConfig(pool_configs=[pool])
            )
        except docker.errors.APIError as exc:
            if "overlap" in str(exc).lower():
                continue
            raise
        break
    assert made is not None, "no free subnet in 10.231.200-249.0/24"
    try:
        yield name, subnet
    finally:
        for network in client.networks.list(
            filters={"label": [f"{k}={v}" for k, v in LABELS.items()]}
        ):
            network.remove()


def test_a_network_without_a_named_gateway_reports_its_subnets_first_address(
    docker_client: DockerEngine, unnamed_gateway: tuple[str, str]
) -> None:
    name, subnet = unnamed_gateway
    containers = DockerContainers(docker_client)
    assert containers.network_gateways(name) == [subnet.replace(".0/24", ".1")]


def test_the_default_bridge_reports_its_gateway(docker_client: DockerEngine) -> None:
    gateways = DockerContainers(docker_client).network_gateways("bridge")
    assert gateways, "the default bridge has a gateway"
    config = docker_client._client.networks.get("bridge").attrs["IPAM"]["Config"][0]
    # Named, or (this machine's engine) not: the subnet's first address, the host's.
    first = ipaddress.ip_network(config["Subnet"]).network_address + 1
    assert gateways[0] == (config.get("Gateway") or str(first))


def test_an_unknown_network_is_an_engine_error(docker_client: DockerEngine) -> None:
    with pytest.raises(ContainerEngineError):
        DockerContainers(docker_client).network_gateways(f"no-such-network-{RUN}")

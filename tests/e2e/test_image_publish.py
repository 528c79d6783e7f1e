"""Publishing an environment image for a cluster: a push to a real registry, and the
digest it returns pulls the same image back."""

import io
import tarfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from beephost_controller.engine.docker_images import DockerEngine
from beephost_controller.ports import ContainerEngineError, ImageNotFoundError
from tests.e2e.registry import local_registry


@pytest.fixture
def labels(docker_client: DockerEngine) -> Iterator[dict[str, str]]:
    """A label unique to this test: the only handle used to clean up."""
    mine = {"io.beephost.test.run": f"publish-{uuid.uuid4().hex[:12]}"}
    yield mine
    docker_client.remove_by_labels(mine)


@pytest.fixture
def registry(
    require_executable: Callable[[str, str], str], tmp_path: Path
) -> Iterator[str]:
    binary = require_executable("docker-registry", "apt-get install docker-registry")
    with local_registry(binary, tmp_path) as address:
        yield address


def _tiny_image(engine: DockerEngine, tmp_path: Path, labels: dict[str, str]) -> str:
    """A one-file image of its own content (a random file: a unique digest)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        data = uuid.uuid4().hex.encode()
        info = tarfile.TarInfo("marker")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    tarball = tmp_path / "rootfs.tar"
    tarball.write_bytes(buffer.getvalue())
    changes = [f"LABEL {key}={value}" for key, value in labels.items()]
    tag = f"beephost-test-publish:{labels['io.beephost.test.run']}"
    return engine.import_image(tarball, tag, changes=changes).id


def test_a_published_image_pulls_back_by_its_digest(
    docker_client: DockerEngine,
    registry: str,
    labels: dict[str, str],
    tmp_path: Path,
) -> None:
    image_id = _tiny_image(docker_client, tmp_path, labels)
    publisher = docker_client.publisher()
    repository = f"{registry}/beephost/env"
    reference = publisher.publish(image_id, repository)
    assert reference.startswith(f"{repository}@sha256:")
    # The push's tag is gone again; a second push of the same image is the same digest.
    local = docker_client.get_image(image_id)
    assert local is not None
    assert not any(tag.startswith(repository) for tag in local.tags)
    assert publisher.publish(image_id, repository) == reference
    # Pulled by digest into an engine that no longer has it: the same image comes back.
    docker_client.remove_image(image_id, force=True)
    assert docker_client.get_image(image_id) is None
    pulled = docker_client.pull_image(repository, reference.partition("@")[2])
    assert pulled.id == image_id


def test_publishing_what_is_not_there_is_a_typed_error(
    docker_client: DockerEngine, registry: str
) -> None:
    publisher = docker_client.publisher()
    with pytest.raises(ImageNotFoundError):
        publisher.publish("beephost-test-publish:absent", f"{registry}/beephost/env")


def test_an_unreachable_registry_is_a_typed_error(
    docker_client: DockerEngine, tmp_path: Path, labels: dict[str, str]
) -> None:
    image_id = _tiny_image(docker_client, tmp_path, labels)
    publisher = docker_client.publisher()
    # A loopback port nothing listens on: refused at once, no traffic leaves.
    with pytest.raises(ContainerEngineError, match="push"):
        publisher.publish(image_id, "127.0.0.1:9/beephost/env")
    local = docker_client.get_image(image_id)
    assert local is not None
    assert not any("127.0.0.1:9" in t for t in local.tags)

"""Base images for real: mmdebstrap from Debian, docker import, and a local registry pull."""

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from beephost_controller.engine.docker_images import DockerEngine
from beephost_controller.images.base import ensure_base_image
from beephost_controller.images.base_source import BaseImage, import_changes
from beephost_controller.images.errors import BaseImageError
from beephost_controller.images.keys import sha256_file
from beephost_controller.images.labels import (
    LABEL_BASE_REF,
    LABEL_PYTHON_VERSION,
    LABEL_ROOTFS_SHA256,
)
from beephost_controller.images.rootfs import RootfsPlan
from beephost_controller.settings import Settings
from tests.e2e.processes import run_captured
from tests.e2e.registry import local_registry

pytestmark = [pytest.mark.docker, pytest.mark.e2e]

VERSIONS = ("3.11", "3.13")
REPOSITORY = "beephost-test/python"
PROBE = "import ssl, sqlite3, ctypes, venv, platform; print(platform.python_version())"
# Creates a venv with pip (ensurepip needs the CA bundle) and checks the ssl trust store.
VENV_CHECK = (
    "python3 -m venv /tmp/venv && /tmp/venv/bin/python -c "
    "'import pip, ssl; "
    'n = ssl.create_default_context().cert_store_stats()["x509_ca"]; '
    "assert n > 100, n; print(pip.__version__)' && python --version"
)


class ForbiddenBuilder:
    """A RootfsBuilder that fails the test if anything tries to run mmdebstrap."""

    def build(self, plan: RootfsPlan, output: Path) -> None:
        pytest.fail(f"mmdebstrap must not run: the {plan.suite} rootfs is cached")


@pytest.fixture(scope="module")
def run_labels() -> dict[str, str]:
    """A label unique to this module run: the only handle used to clean up."""
    return {"io.beephost.test.run": f"base-images-{uuid.uuid4().hex[:12]}"}


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        base_image_repository=REPOSITORY,
        base_image_registry="",
        base_image_digests={},
        rootfs_cache_dir=tmp_path_factory.mktemp("rootfs"),
        debian_mirror="http://deb.debian.org/debian",
    )


@pytest.fixture(scope="module")
def base_images(
    docker_client: DockerEngine,
    require_executable: Callable[[str, str], str],
    settings: Settings,
    run_labels: dict[str, str],
) -> Iterator[dict[str, tuple[BaseImage, float]]]:
    """Build every version once for the module (15-30 s each): image and build seconds."""
    require_executable("mmdebstrap", "apt-get install mmdebstrap")
    built: dict[str, tuple[BaseImage, float]] = {}
    try:
        for version in VERSIONS:
            started = time.monotonic()
            image = ensure_base_image(
                version, settings, runtime=docker_client, extra_labels=run_labels
            )
            built[version] = (image, time.monotonic() - started)
            print(
                f"\nbuilt {image.tag} ({image.python_version}) in "
                f"{built[version][1]:.1f} s, {image.size / 1e6:.1f} MB"
            )
        yield built
    finally:
        removed = docker_client.remove_by_labels(run_labels)
        print(f"\nremoved {len(removed)} test images")


@pytest.fixture(params=VERSIONS)
def version(request: pytest.FixtureRequest) -> str:
    """Each Python version the module builds, in turn."""
    version: str = request.param
    return version


@pytest.fixture
def image(base_images: dict[str, tuple[BaseImage, float]], version: str) -> BaseImage:
    """The module's base image of ``version``."""
    return base_images[version][0]


def docker_run(docker_cli: str, labels: dict[str, str], image: str, *argv: str) -> str:
    label_args = [
        arg for key, value in labels.items() for arg in ("--label", f"{key}={value}")
    ]
    result = run_captured(
        [docker_cli, "run", "--rm", "--network=none", *label_args, image, *argv],
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_build_from_debian(
    base_images: dict[str, tuple[BaseImage, float]],
    docker_client: DockerEngine,
    version: str,
) -> None:
    image, seconds = base_images[version]
    assert image.built is True
    assert image.source == "debian"
    assert image.tag == f"{REPOSITORY}:{version}"
    assert image.python_version.startswith(f"{version}.")
    assert image.rootfs_path is not None
    assert image.rootfs_sha256 == sha256_file(image.rootfs_path)
    info = docker_client.get_image(image.tag)
    assert info is not None
    assert info.id == image.image_id
    assert info.labels[LABEL_ROOTFS_SHA256] == image.rootfs_sha256
    print(f"\nbase image {version} built in {seconds:.0f} s")


def test_runs_exactly_the_labelled_version(
    image: BaseImage,
    docker_client: DockerEngine,
    docker_cli: str,
    run_labels: dict[str, str],
) -> None:
    info = docker_client.get_image(image.tag)
    assert info is not None
    output = docker_run(docker_cli, run_labels, image.tag, "python3", "-c", PROBE)
    assert output == info.labels[LABEL_PYTHON_VERSION] + "\n"
    assert output.strip() == image.python_version


def test_venv_with_pip_and_trust_store(
    image: BaseImage, docker_cli: str, run_labels: dict[str, str]
) -> None:
    output = docker_run(docker_cli, run_labels, image.tag, "sh", "-c", VENV_CHECK)
    assert output.splitlines()[-1] == f"Python {image.python_version}"


def test_second_call_is_a_cache_hit(
    image: BaseImage,
    docker_client: DockerEngine,
    settings: Settings,
    run_labels: dict[str, str],
    version: str,
) -> None:
    started = time.monotonic()
    again = ensure_base_image(
        version,
        settings,
        runtime=docker_client,
        builder=ForbiddenBuilder(),
        extra_labels=run_labels,
    )
    elapsed = time.monotonic() - started
    print(f"\ncache hit for {version} in {elapsed * 1000:.0f} ms")
    assert again.built is False
    assert again.image_id == image.image_id
    assert again.python_version == image.python_version
    assert again.rootfs_sha256 == image.rootfs_sha256


def test_missing_image_is_reimported_from_the_cached_rootfs(
    base_images: dict[str, tuple[BaseImage, float]],
    docker_client: DockerEngine,
    settings: Settings,
    run_labels: dict[str, str],
) -> None:
    image, _ = base_images["3.11"]
    docker_client.remove_image(image.tag, force=True)
    started = time.monotonic()
    again = ensure_base_image(
        "3.11",
        settings,
        runtime=docker_client,
        builder=ForbiddenBuilder(),
        extra_labels=run_labels,
    )
    print(f"\nre-import from the cached rootfs in {time.monotonic() - started:.1f} s")
    assert again.built is True
    assert again.rootfs_sha256 == image.rootfs_sha256
    assert again.python_version == image.python_version


# -- registry mode, against a local CNCF distribution registry ------------------------


@pytest.fixture
def registry(
    require_executable: Callable[[str, str], str], tmp_path: Path
) -> Iterator[str]:
    """A throwaway registry on a loopback port (the engine trusts 127.0.0.0/8 over HTTP)."""
    binary = require_executable("docker-registry", "apt-get install docker-registry")
    with local_registry(binary, tmp_path) as address:
        yield address


@pytest.fixture
def registry_mode(registry: str, settings: Settings) -> Callable[[str, str], Settings]:
    """``registry_mode(repository, digest)``: the module's settings with 3.11 pulled
    from ``registry`` by ``digest``, into ``repository``."""

    def make(repository: str, digest: str) -> Settings:
        return Settings(
            base_image_repository=repository,
            base_image_registry=registry,
            base_image_digests={"3.11": digest},
            rootfs_cache_dir=settings.rootfs_cache_dir,
            debian_mirror=settings.debian_mirror,
        )

    return make


def test_registry_mode_pulls_by_digest(
    base_images: dict[str, tuple[BaseImage, float]],
    docker_client: DockerEngine,
    docker_cli: str,
    registry: str,
    settings: Settings,
    run_labels: dict[str, str],
    registry_mode: Callable[[str, str], Settings],
) -> None:
    debian = ensure_base_image(
        "3.11", settings, runtime=docker_client, extra_labels=run_labels
    )
    assert debian.rootfs_path is not None
    # Publish a distinct image (same rootfs, own config) as python:3.11-slim, then drop
    # it locally, so the pull below must fetch its manifest and config from the registry.
    published = f"{registry}/python:3.11-slim"
    docker_client.import_image(
        debian.rootfs_path, published, changes=import_changes(run_labels)
    )
    push = run_captured([docker_cli, "push", published], timeout=180)
    assert push.returncode == 0, push.stderr
    info = docker_client.get_image(published)
    assert info is not None
    (repo_digest,) = info.repo_digests
    digest = repo_digest.partition("@")[2]
    docker_client.remove_image(published)
    assert docker_client.get_image(f"{registry}/python@{digest}") is None

    registry_settings = registry_mode(f"{REPOSITORY}-registry", digest)
    started = time.monotonic()
    image = ensure_base_image(
        "3.11", registry_settings, runtime=docker_client, extra_labels=run_labels
    )
    print(f"\npull by digest and relabel in {time.monotonic() - started:.1f} s")
    assert image.source == "registry"
    assert image.built is True
    assert image.digest == digest
    assert image.python_version == debian.python_version
    labelled = docker_client.get_image(image.tag)
    assert labelled is not None
    assert labelled.labels[LABEL_BASE_REF] == f"{registry}/python:3.11-slim@{digest}"
    output = docker_run(docker_cli, run_labels, image.tag, "python3", "-c", PROBE)
    assert output.strip() == labelled.labels[LABEL_PYTHON_VERSION]

    again = ensure_base_image(
        "3.11", registry_settings, runtime=docker_client, extra_labels=run_labels
    )
    assert again.built is False
    assert again.image_id == image.image_id


def test_registry_mode_unknown_digest_fails(
    base_images: dict[str, tuple[BaseImage, float]],
    docker_client: DockerEngine,
    run_labels: dict[str, str],
    registry_mode: Callable[[str, str], Settings],
) -> None:
    missing = registry_mode(f"{REPOSITORY}-missing", "sha256:" + "0" * 64)
    with pytest.raises(BaseImageError, match="cannot pull"):
        ensure_base_image(
            "3.11", missing, runtime=docker_client, extra_labels=run_labels
        )
    assert docker_client.get_image(f"{REPOSITORY}-missing:3.11") is None

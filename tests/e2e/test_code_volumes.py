"""Code volumes on the real engine: an image's /usr and /opt copied once into volumes
that its backends mount read-only, kept across a controller restart, removed with the
image, and with every backend at a shutdown that stops them.

The module's controller has CODE_VOLUMES=on, so the tests hold on any storage driver.
"""

import json
import time

import pytest

from beephost_client.controller import Backend, BackendType, ControllerClient
from tests.e2e.containers import docker
from tests.e2e.controller_process import (
    CONTROLLER_LABEL,
    ControllerProcess,
    build_environment,
    module_controller,
)

pytestmark = pytest.mark.docker

ENV = "code"
COMPLETE = "label=io.beephost.code-volume.part=complete"


controller = module_controller("code-volumes", {"CODE_VOLUMES": "on"})


def _code_volumes(controller: ControllerProcess, docker_cli: str) -> dict[str, str]:
    """This controller's code volumes -> when each was made."""
    names = [n for n in controller.owned("volume") if "-code-" in n]
    if not names:
        return {}
    found = json.loads(docker(docker_cli, "volume", "inspect", *names))
    return {v["Name"]: v["CreatedAt"] for v in found}


def _wait_filled(controller: ControllerProcess, docker_cli: str) -> None:
    owned = f"label={CONTROLLER_LABEL}={controller.name}"
    deadline = time.monotonic() + 120
    while not docker(
        docker_cli, "volume", "ls", "-q", "--filter", owned, "--filter", COMPLETE
    ).split():
        assert time.monotonic() < deadline, "the code volumes were never filled"
        time.sleep(0.2)


def _mounts(backend: Backend, docker_cli: str) -> dict[str, tuple[str, bool]]:
    """Where each volume is mounted in the backend's container -> (name, writable)."""
    assert backend.container_id is not None
    inspected = json.loads(docker(docker_cli, "inspect", backend.container_id))[0]
    return {
        m["Destination"]: (m["Name"], m["RW"])
        for m in inspected["Mounts"]
        if m["Type"] == "volume"
    }


def _start(api: ControllerClient, kind: BackendType) -> Backend:
    backend = api.wait_backend(api.start_backend(ENV, kind).id, timeout=60)
    with api.connect_backend(backend.id) as client:
        # The interpreter and the server came from the volumes, and run.
        assert client.evaluate("'%d.%d' % __import__('sys').version_info[:2]") == "3.11"
        assert client.evaluate("__import__('os').statvfs('/opt').f_flag & 1") == 1
    return backend


def test_backends_of_an_image_mount_one_copy_of_its_code_read_only(
    api: ControllerClient, controller: ControllerProcess, docker_cli: str
) -> None:
    build_environment(api, ENV, [], timeout=600)
    first = _start(api, "pipe")  # no start waits for the copy it begins
    try:
        assert "/usr" not in _mounts(first, docker_cli)
        _wait_filled(controller, docker_cli)
        made = _code_volumes(controller, docker_cli)
        assert len(made) == 3  # /usr, /opt and the mark of a complete copy
        # Counted beside their image: most of an image is its /usr and /opt.
        (image,) = [i for i in api.images() if ENV in i.environments]
        assert image.size // 2 < image.code_volumes_bytes < image.size * 2
        assert image.disk_bytes == image.size + image.code_volumes_bytes
        backends = [_start(api, kind) for kind in ("http", "rpc")]
        for backend in backends:
            mounts = _mounts(backend, docker_cli)
            assert {path: rw for path, (_, rw) in mounts.items()} == {
                "/usr": False,
                "/opt": False,
                "/workspace": True,
                "/packages": True,
            }
            assert {mounts["/usr"][0], mounts["/opt"][0]} < made.keys()
        assert _code_volumes(controller, docker_cli) == made  # copied once
    finally:
        for backend in api.backends():
            api.stop_backend(backend.id)


def test_a_restart_keeps_them_and_the_environments_deletion_removes_them(
    api: ControllerClient, controller: ControllerProcess, docker_cli: str
) -> None:
    made = _code_volumes(controller, docker_cli)
    assert len(made) == 3, "the first test fills them"
    controller.stop()
    controller.start()
    with controller.client() as client:
        backend = _start(client, "http")
        assert "/usr" in _mounts(backend, docker_cli)
        client.stop_backend(backend.id)
        assert _code_volumes(controller, docker_cli) == made
        client.delete_environment(ENV)
        assert not [i for i in client.images() if i.code_volumes_bytes]
    assert _code_volumes(controller, docker_cli) == {}


def test_a_pool_member_mounts_them_from_the_first_start_of_its_image(
    api: ControllerClient, controller: ControllerProcess, docker_cli: str
) -> None:
    assert _code_volumes(controller, docker_cli) == {}, "the test before removes them"
    build_environment(api, ENV, [], timeout=600)
    api.set_pool(ENV, "http", 1)
    try:
        deadline = time.monotonic() + 120
        while not (members := [b for b in api.backends() if b.status == "ready"]):
            assert time.monotonic() < deadline, "the pool never had a ready member"
            time.sleep(0.2)
        # Its start waited for the copy its image's first start began.
        assert "/usr" in _mounts(members[0], docker_cli)
    finally:
        api.set_pool(ENV, "http", 0)
        deadline = time.monotonic() + 60
        while api.backends():
            assert time.monotonic() < deadline, "the pool's member was not removed"
            time.sleep(0.2)
        api.delete_environment(ENV)

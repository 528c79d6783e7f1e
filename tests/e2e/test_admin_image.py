"""The admin environment's image on the real engine: it carries the client SDK.

Builds on the session's test backend images (tests/e2e/session_fixtures.py), in test
repositories, labelled with the session's run label: cleanup is by that label only.
"""

import pytest

from beephost_controller.images.builder import DockerImageBuilder
from beephost_controller.images.labels import LABEL_ENVIRONMENT_SDK
from beephost_controller.images.layout import ENV_PYTHON
from beephost_controller.service import ADMIN_ENVIRONMENT, ControllerService
from tests.e2e.containers import docker, inspect, label_args
from tests.e2e.environment_service import RecordingLog, module_environment_service
from tests.e2e.session_fixtures import BuiltBackends
from tests.e2e.test_controller_images import check_layering
from tests.unit.controller.support import pending_environment

pytestmark = pytest.mark.docker

PROBE = """\
import beephost_client.controller, pydantic
from beephost_client import ConnectError, ControllerClient
print(ControllerClient.__name__, ControllerClient is beephost_client.controller.ControllerClient)
client = ControllerClient()
print(client.url)
try:
    client.environments()
except ConnectError:
    print("connect error")
"""


admin_service = module_environment_service(
    "admin_service", "ctl-admin", "env-admin-test"
)


def test_admin_image_carries_the_client_sdk(
    admin_service: ControllerService, docker_cli: str, backend_images: BuiltBackends
) -> None:
    admin_service.store.insert_environment(
        pending_environment(ADMIN_ENVIRONMENT, admin=True)
    )
    log = RecordingLog()
    admin_service.build_environment(ADMIN_ENVIRONMENT, log)
    row = admin_service.environment(ADMIN_ENVIRONMENT)
    assert row.status == "ready", row.error
    assert row.image is not None
    assert row.lock is not None
    assert "pydantic==" in row.lock
    assert any(line.startswith("client SDK: beephost-") for line in log.lines)
    labels = inspect(docker_cli, row.image, "image")["Config"]["Labels"]
    builder = admin_service.builder
    assert isinstance(builder, DockerImageBuilder)
    assert labels[LABEL_ENVIRONMENT_SDK] == builder.sdk_version
    assert (
        labels["io.beephost.test.run"] == backend_images.labels["io.beephost.test.run"]
    )
    # One committed layer (the lock, then the SDK) on the servers image.
    check_layering(docker_cli, row.image, backend_images.labels)
    assert any(line.startswith("servers image ") for line in log.lines)

    # User code's interpreter (isolated, as workers run it) imports the SDK, which
    # reads the controller's URL from the environment the controller gives it.
    socket_url = "unix:///run/beephost-controller/api.sock"
    out = docker(
        docker_cli,
        "run", "--rm", "--network", "none", *label_args(backend_images.labels),
        "-e", f"BEEPHOST_CONTROLLER_URL={socket_url}",
        "-e", "BEEPHOST_CONTROLLER_TOKEN=scoped",
        row.image, ENV_PYTHON, "-I", "-c", PROBE,
    )  # fmt: skip
    assert out.splitlines() == [
        "ControllerClient True",
        socket_url,
        "connect error",
    ]
    # Installed with --no-deps after the lock: the SDK's pydantic is the lock's.
    pinned = next(
        line.split("==")[1].split()[0]
        for line in row.lock.splitlines()
        if line.startswith("pydantic==")
    )
    out = docker(
        docker_cli,
        "run", "--rm", "--network", "none", *label_args(backend_images.labels),
        row.image, ENV_PYTHON, "-I", "-c",
        "import os, pydantic; print(os.getuid(), pydantic.VERSION)",
    )  # fmt: skip
    assert out.split() == ["10001", pinned]

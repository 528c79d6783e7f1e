"""docker-py's exceptions mapped to the ports' errors: a container on its way out is
``ContainerGone`` (gone for good), not a failure worth retrying."""

import docker.errors
import pytest
import requests

from beephost_controller.engine.docker_errors import mapped_errors
from beephost_controller.ports import ContainerEngineError, ContainerGone


def _api_error(status: int, explanation: str) -> docker.errors.APIError:
    response = requests.Response()
    response.status_code = status
    return docker.errors.APIError("engine", response, explanation)


@pytest.mark.parametrize(
    "explanation",
    [
        "can not get logs from container which is dead or marked for removal",
        "removal of container 3f2a is already in progress",
    ],
)
def test_a_container_being_removed_is_gone(explanation: str) -> None:
    with (
        pytest.raises(ContainerGone, match="logs of container c"),
        mapped_errors("logs of container c"),
    ):
        raise _api_error(409, explanation)


def test_another_conflict_is_an_engine_failure() -> None:
    with (
        pytest.raises(ContainerEngineError) as caught,
        mapped_errors("start container c"),
    ):
        raise _api_error(409, "container is paused")
    assert not isinstance(caught.value, ContainerGone)

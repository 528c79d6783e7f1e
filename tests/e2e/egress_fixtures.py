"""The fixtures a module of egress tests shares: one fake internet, and a controller
process whose egress proxy joins it.

A module takes them by assignment (``internet = egress_fixtures.internet``), which
replaces the session's ``controller`` (tests/conftest.py) for that module only.
"""

from collections.abc import Iterator

import pytest

from tests.e2e.controller_process import ControllerProcess
from tests.e2e.fake_internet import FakeInternet, egress_controller, fake_internet
from tests.e2e.session_fixtures import BuiltBackends


@pytest.fixture(scope="module")
def internet(backend_images: BuiltBackends, docker_cli: str) -> Iterator[FakeInternet]:
    """The module's fake internet; nothing of it is left afterwards."""
    with fake_internet(docker_cli, backend_images.base.tag) as world:
        yield world
    assert world.remaining() == []


@pytest.fixture(scope="module")
def controller(
    internet: FakeInternet,
    backend_images: BuiltBackends,
    docker_cli: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ControllerProcess]:
    """The module's controller process, its egress proxy on the fake internet."""
    with egress_controller(
        internet, backend_images, docker_cli, tmp_path_factory.mktemp("egress")
    ) as proc:
        yield proc

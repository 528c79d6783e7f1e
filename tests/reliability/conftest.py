"""The reliability suite: the e2e fixtures (a real controller on the real engine), the
controller with a token, and the summary table's hooks, registered here by importing
them by name."""

from collections.abc import Iterator

import pytest

from beephost_client.controller import ControllerClient
from tests.e2e.conftest import (  # noqa: F401
    backend_images,
    backend_run_labels,
    controller,
    docker_cli,
    docker_client,
    require_executable,
)
from tests.e2e.controller_process import ControllerProcess
from tests.reliability.fuzz_support import token_controller  # noqa: F401
from tests.reliability.summary import (  # noqa: F401
    pytest_runtest_makereport,
    pytest_terminal_summary,
    reliability_case,
)


@pytest.fixture(scope="module")
def api(
    controller: ControllerProcess,  # noqa: F811 - the fixture imported above, by name
) -> Iterator[ControllerClient]:
    """A client of the session's controller, for one module's tests."""
    with controller.client() as client:
        yield client

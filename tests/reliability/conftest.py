"""The reliability suite: the e2e fixtures (a real controller on the real engine), the
controller with a token, the fuzzed backends, and the summary table's hooks, registered
here by importing them by name."""

from tests.e2e.conftest import (  # noqa: F401
    api,
    backend_images,
    backend_run_labels,
    compose_controller,
    controller,
    controller_target,
    docker_cli,
    docker_client,
    require_executable,
)
from tests.reliability.fuzz_support import (  # noqa: F401
    fuzz_backends,
    token_controller,
)
from tests.reliability.summary import (  # noqa: F401
    pytest_runtest_makereport,
    pytest_terminal_summary,
    reliability_case,
)

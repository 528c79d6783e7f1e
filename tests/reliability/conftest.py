"""The reliability suite: the controller with a token, the fuzzed backends, and the
summary table's hooks, registered here by importing them by name. The e2e fixtures (a
real controller on the real engine) come from tests/conftest.py, shared with the e2e
tier: registered here again, they would be built twice in one session."""

from tests.reliability.fuzz_support import (  # noqa: F401
    fuzz_backends,
    token_controller,
)
from tests.reliability.summary import (  # noqa: F401
    pytest_runtest_makereport,
    pytest_terminal_summary,
    reliability_case,
)

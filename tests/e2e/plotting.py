"""The plotting environment e2e tests share: REAL matplotlib, numpy and pandas from
PyPI. Its image is content-addressed (the base, the lock, the servers' code), so every
controller of a session building into the session's test repositories finds the one
image the first built: test_rich_outputs and the console's playground share it."""

from beephost_client.controller import ControllerClient
from tests.e2e.controller_process import build_environment

REQUIREMENTS = ["matplotlib==3.11.2", "numpy==2.4.6", "pandas==3.1.1"]
#: Its name on each controller.
NAME = "plots"
#: Seconds its first build may take (three wheels' worth of PyPI, and the image).
BUILD_TIMEOUT = 900


def plotting_environment(api: ControllerClient) -> str:
    """The environment on ``api``'s controller, created and built unless it is."""
    return build_environment(api, NAME, REQUIREMENTS, timeout=BUILD_TIMEOUT)

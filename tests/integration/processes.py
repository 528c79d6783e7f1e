"""A service's environment and its ``python -m`` command, run as a container runs them."""

import os
import subprocess
import sys


def service_env(**settings: str) -> dict[str, str]:
    """This process's environment without any ``BEEPHOST_*`` variable, plus ``settings``
    (by their full variable names): a service sees only the settings a test gives it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BEEPHOST_")}
    env.update(settings)
    return env


def run_module(
    module: str, *args: str, timeout: float = 30, **settings: str
) -> subprocess.CompletedProcess[str]:
    """``python -m <module> <args>`` in :func:`service_env` ``(**settings)``, to its end;
    its output as text, its exit code unchecked."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        env=service_env(**settings),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )

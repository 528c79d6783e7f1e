"""The default session's worker, started before the server's settings are validated.

A cold start counts to the first answer (issue 33). The worker's boot (an interpreter
and its imports, 40-60 ms in a container) came after the settings' (pydantic and the
models, 250 ms and more), on the pipe backend's path to its first answer. Started
first, from what the environment says (this module is stdlib only: it runs before
pydantic is imported), it boots meanwhile on another core, then waits for its settings
on its socket. The executor serves with it only if its :class:`Launch` (interpreter,
environment, directory) is the one the validated settings give; otherwise it is killed
and a worker spawned as ever. It runs no user code before its settings came.
"""

import contextlib
import json
import os
import signal
import socket
import subprocess
from collections.abc import Mapping
from pathlib import Path

from beephost_core.config import (
    ExecutorConfig,
    base_interpreter,
    checked_worker_env,
)
from beephost_core.launch import SETTINGS_FOLLOW, Launch

_REAP_TIMEOUT = 2.0  # seconds a killed early worker gets to be reaped


class EarlyWorker:
    """A started worker waiting for its settings; the executor adopts or discards it."""

    def __init__(
        self,
        launch: Launch,
        popen: "subprocess.Popen[bytes]",
        sock: socket.socket,
        stderr: int,
    ) -> None:
        self.launch = launch
        self.popen = popen
        self._socket: socket.socket | None = sock
        self._stderr: int | None = stderr

    @classmethod
    def start(cls, launch: Launch) -> "EarlyWorker | None":
        """Start a worker as ``launch`` says; None if it cannot be started."""
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        # A pipe of our own, not Popen's (whose file object would close it too): the
        # adopting executor becomes the one owner of its read end.
        read_end, write_end = os.pipe()
        try:
            popen = subprocess.Popen(
                launch.command(child.fileno(), SETTINGS_FOLLOW),
                pass_fds=(child.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=write_end,
                env=launch.environment,
                cwd=launch.cwd,
                start_new_session=True,  # its own process group, killed as a whole
            )
        except (OSError, ValueError):  # no such interpreter or directory
            parent.close()
            os.close(read_end)
            return None
        finally:
            child.close()
            os.close(write_end)
        return cls(launch, popen, parent, read_end)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def take_socket(self) -> socket.socket:
        """Its end of the worker's socket, for the caller to own."""
        sock, self._socket = self._socket, None
        if sock is None:
            raise RuntimeError("the early worker's socket was taken already")
        return sock

    def take_stderr(self) -> int:
        """The read end of the worker's stderr (a descriptor), for the caller to own."""
        stderr, self._stderr = self._stderr, None
        if stderr is None:
            raise RuntimeError("the early worker's stderr was taken already")
        return stderr

    def discard(self) -> None:
        """Kill it (its process group) and reap it; what was not taken is closed."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        if self._socket is not None:
            self._socket.close()
        if self._stderr is not None:
            os.close(self._stderr)
        self._socket = self._stderr = None
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=_REAP_TIMEOUT)


def start_early(
    prefix: str, environ: Mapping[str, str] | None = None
) -> EarlyWorker | None:
    """The default session's worker, started as the settings read from ``environ``
    (default: the process's) with ``prefix`` will most likely say; None when they
    cannot be told yet (see :func:`guessed_config`) or it does not start."""
    config = guessed_config(prefix, os.environ if environ is None else environ)
    return None if config is None else EarlyWorker.start(Launch.of(config))


def guessed_config(prefix: str, environ: Mapping[str, str]) -> ExecutorConfig | None:
    """What decides a worker's launch in the config the backend settings with
    ``prefix`` will give (``BackendSettings.executor_config`` after the executor
    opened its workspace), read from ``environ`` as they read it: names
    case-insensitive, the last spelling winning; WORKER_ENV and WORKER_ENV_FILE's
    objects merged.

    None when it cannot be told before the settings are validated: no WORKSPACE_DIR
    (the executor makes a temporary one), or a WORKER_ENV or WORKER_ENV_FILE the
    settings will refuse (no worker may start with variables they refuse).
    """
    values = {name.lower(): value for name, value in environ.items()}

    def setting(name: str) -> str | None:
        return values.get(f"{prefix}{name}".lower())

    workspace = setting("WORKSPACE_DIR")
    if not workspace:
        return None
    extra_env: dict[str, str] = {}
    try:
        if (given := setting("WORKER_ENV")) is not None:
            extra_env |= checked_worker_env(json.loads(given))
        if (file := setting("WORKER_ENV_FILE")) is not None:
            extra_env |= checked_worker_env(json.loads(Path(file).read_text()))
    except (OSError, ValueError):
        return None
    python = setting("PYTHON")
    config = ExecutorConfig(
        python=base_interpreter() if python is None else python,
        cwd=setting("WORKER_CWD"),
        packages=setting("PACKAGES_DIR"),
        extra_env=extra_env,
    )
    return config.in_workspace(str(Path(workspace).absolute()))

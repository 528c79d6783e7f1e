"""A ``python -m beephost_controller`` process on this machine, for the e2e tests and
the benchmarks: its settings as ``BEEPHOST_CONTROLLER_*`` variables, its log, its start
until ready and its stop. What it builds, how it names it and how that is removed
afterwards are the caller's (tests/e2e/controller_process.py, bench/controller.py)."""

import os
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from beephost_client.controller import ControllerClient


@dataclass(kw_only=True)
class LocalController:
    """One controller: its database, sockets and log in ``workdir``, its API on the
    loopback ``port``, and, while it runs, its process."""

    workdir: Path
    port: int
    #: Settings over :meth:`defaults`, named without ``BEEPHOST_CONTROLLER_``.
    settings: Mapping[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "controller.log"

    @property
    def socket_root(self) -> Path:
        return self.workdir / "sockets"

    def defaults(self) -> dict[str, str]:
        """The settings every run needs: a database, socket root and port of its own.
        A subclass adds what it builds and how it names it."""
        return {
            "DATABASE": str(self.workdir / "controller.db"),
            "SOCKET_ROOT": str(self.socket_root),
            "PORT": str(self.port),
        }

    def environ(self) -> dict[str, str]:
        """This process's environment without its ``BEEPHOST_*`` variables, plus
        :meth:`defaults` and ``settings`` over them as ``BEEPHOST_CONTROLLER_*``."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("BEEPHOST_")}
        settings = {**self.defaults(), **self.settings}
        env.update({f"BEEPHOST_CONTROLLER_{k}": v for k, v in settings.items()})
        return env

    def start(self, timeout: float = 60.0) -> None:
        """Start the process, its output appended to the log, and wait until /ready
        (reconciliation done).

        Raises:
            RuntimeError: It exited, or was not ready after ``timeout`` s (the message
                ends with the log's end).
        """
        assert self.process is None, "already running"
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"\n--- start {self.starts} ---\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "beephost_controller"],
                env=self.environ(),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        with ControllerClient(self.url, timeout=2.0) as client:  # /ready needs no token
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"the controller exited {self.process.returncode}:\n{self.log()}"
                    )
                try:
                    client.ready()
                    return
                except Exception:  # not listening or not ready yet: ask again
                    if time.monotonic() > deadline:
                        raise RuntimeError(
                            f"the controller is not ready:\n{self.log()}"
                        ) from None
                    time.sleep(0.1)

    def log(self, size: int = 4000) -> str:
        """The log's last ``size`` characters."""
        try:
            return self.log_path.read_text(errors="replace")[-size:]
        except FileNotFoundError:
            return "(no log)"

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM; SIGKILL if it still runs after ``grace`` s."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        self.process = None

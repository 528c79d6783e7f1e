"""A real controller on loopback for CLI tests: uvicorn in a thread, SQLite in a temp dir.

Images come from :class:`LoggingBuilder` (no Docker): it prints build lines over time,
so the CLI's live log view follows a real log stream. Requirements resolve with a fake
resolver that fails for names starting with ``no-such-``, as uv would.
"""

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn
from pydantic import SecretStr

from beephost_controller.app import create_app
from beephost_controller.jobs import JobLog
from beephost_controller.ports import BaseImageRef
from beephost_controller.resolver import Lock, ResolutionError
from beephost_controller.settings import Settings
from tests.unit.controller.memory_containers import MemoryContainers

TOKEN = "ctl-T0ken"
BIN = Path(sys.executable).parent


@dataclass
class LoggingBuilder:
    """A working image builder without Docker; images are names in a set."""

    code_version = "cli-test"
    fail: str | None = None
    step_seconds: float = 0.02
    images: set[str] = field(default_factory=set)

    def ensure_base(self, python: str, log: Callable[[str], None]) -> BaseImageRef:
        log(f"importing rootfs for CPython {python}")
        return BaseImageRef(
            python,
            f"beephost/python:{python}",
            f"sha256:base{python}",
            f"{python}.0",
            "debian",
        )

    def image_exists(self, tag: str) -> bool:
        return tag in self.images

    def build_environment(
        self, *, base: BaseImageRef, lock: Lock, tag: str, admin: bool, log: JobLog
    ) -> None:
        for step in (
            "Step 1/3 : FROM base",
            "Step 2/3 : RUN uv pip install",
            "Step 3/3 : COPY",
        ):
            time.sleep(self.step_seconds)
            log(step)
        if self.fail:
            raise RuntimeError(self.fail)
        self.images.add(tag)


def fake_resolver(requirements: list[str], python: str) -> Lock:
    missing = [r for r in requirements if r.startswith("no-such-")]
    if missing:
        raise ResolutionError(
            f"Because {missing[0]} was not found in the package registry"
        )
    return Lock(
        "".join(f"{r}==1.0 \\\n    --hash=sha256:{'0' * 64}\n" for r in requirements)
    )


@dataclass
class LiveController:
    url: str
    token: str | None
    builder: LoggingBuilder
    database: Path

    def env(self, **extra: str | None) -> dict[str, str | None]:
        """Environment variables pointing the CLI at this controller."""
        return {
            "BEEPHOST_CONTROLLER_URL": self.url,
            "BEEPHOST_TOKEN": self.token,
            "COLUMNS": "200",
            **extra,
        }


@contextmanager
def live_controller(
    directory: Path, builder: LoggingBuilder | None = None, token: str | None = TOKEN
) -> Iterator[LiveController]:
    builder = builder or LoggingBuilder()
    settings = Settings(
        database=directory / "controller.db",
        token=SecretStr(token) if token else None,
        pythons=["3.11", "3.13"],
    )
    app = create_app(
        settings,
        builder=builder,
        resolver=fake_resolver,
        containers=MemoryContainers(),  # never the real engine's "default" controller
    )
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive(), "the controller did not start"
        assert time.monotonic() < deadline, "the controller did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield LiveController(
            f"http://127.0.0.1:{port}", token, builder, settings.database
        )
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def subprocess_env(controller: LiveController | None, **extra: str) -> dict[str, str]:
    """The test process's environment for a CLI child, pointed at ``controller``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("BEEPHOST_", "COLUMNS"))
    }
    if controller is not None:
        env.update({k: v for k, v in controller.env().items() if v is not None})
    env.update(extra)
    return env

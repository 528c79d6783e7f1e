"""A real controller on loopback for CLI tests: uvicorn in a thread, SQLite in a temp dir.

Images come from :class:`MemoryImageBuilder` (no Docker): it prints build lines over time,
so the CLI's live log view follows a real log stream. Requirements resolve with a fake
resolver that fails for names starting with ``no-such-``, as uv would.
"""

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from beephost_controller.app import create_app
from beephost_controller.resolver import Lock, ResolutionError
from beephost_controller.settings import Settings
from beephost_controller.testing import MemoryContainers, MemoryImageBuilder
from tests.integration.serving import port_of, served

TOKEN = "ctl-T0ken"
BIN = Path(sys.executable).parent


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
    builder: MemoryImageBuilder
    database: Path
    containers: MemoryContainers

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
    directory: Path,
    builder: MemoryImageBuilder | None = None,
    token: str | None = TOKEN,
    **settings: Any,
) -> Iterator[LiveController]:
    """Args: ``settings`` override the controller's (``restart_limit=0``...)."""
    builder = builder or MemoryImageBuilder(step_seconds=0.02)
    # Its own and short (a Unix socket's path is at most 107 bytes: the egress
    # proxy's is made under it), never the user's default.
    sockets = Path(tempfile.mkdtemp(prefix="bh-", dir="/tmp"))
    settings.setdefault("socket_root", sockets)
    config = Settings(
        database=directory / "controller.db",
        token=SecretStr(token) if token else None,
        pythons=["3.11", "3.13"],
        **settings,
    )
    containers = MemoryContainers()  # never the real engine's "default" controller
    app = create_app(
        config, builder=builder, resolver=fake_resolver, containers=containers
    )
    try:
        with served(app, host="127.0.0.1", port=0) as server:
            yield LiveController(
                f"http://127.0.0.1:{port_of(server)}",
                token,
                builder,
                config.database,
                containers,
            )
    finally:
        containers.close()
        shutil.rmtree(sockets, ignore_errors=True)


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

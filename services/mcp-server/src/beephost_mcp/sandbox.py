"""A sandbox: one backend and the interpreter session an MCP session runs code in,
and where sandboxes come from (a fixed backend, or a controller's warm pool)."""

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from beephost_client import (
    AsyncClient,
    AsyncControllerClient,
    AsyncSession,
    BeepHostError,
    Conflict,
    Timeout,
    Unavailable,
    aconnect,
)
from beephost_mcp.settings import BackendKind

log = logging.getLogger(__name__)

#: Idle seconds before the backend expires an interpreter session: longer than any
#: MCP session's idle timeout, so the backend never drops one under a live session.
_INTERPRETER_TTL = 24 * 3600.0


class Sandbox:
    """One backend and the interpreter (a session of the backend: a worker process of
    its own) that ``run_python`` uses; files live in the backend's workspace."""

    def __init__(self, client: AsyncClient, backend_id: str | None) -> None:
        self.client = client
        #: The controller's id of the backend (None: a fixed backend).
        self.backend_id = backend_id
        self._interpreter: AsyncSession | None = None
        self.last_used = time.monotonic()
        #: Calls in flight: an idle sandbox has none.
        self.busy = 0
        #: Said once to the model with the next result (why its state is new).
        self.notice: str | None = None
        #: Held by a run from its start to the end of its clean-up: a run cancelled
        #: by the client is interrupted before the next run starts, so the interrupt
        #: can never land on the next one (the MCP server handles calls at once).
        self.running = asyncio.Lock()

    async def interpreter(self) -> AsyncSession:
        """The interpreter session, opened at its first use."""
        if self._interpreter is None or self._interpreter.closed:
            self._interpreter = await self.client.open_session(ttl=_INTERPRETER_TTL)
        return self._interpreter

    async def restart_interpreter(self) -> None:
        """A fresh interpreter: the old one's process stops, the files stay."""
        old, self._interpreter = self._interpreter, None
        if old is not None and not old.closed:
            try:
                await old.aclose()
            except BeepHostError as exc:  # lost already: nothing to stop
                log.info("closing the old interpreter: %s", exc.code)
        await self.interpreter()

    async def interrupt(self) -> bool:
        """Signal the code running in the interpreter; whether any was."""
        if self._interpreter is None or self._interpreter.closed:
            return False
        return await self._interpreter.interrupt()

    async def aclose(self) -> None:
        """Close the interpreter and the client (the backend stays)."""
        try:
            if self._interpreter is not None and not self._interpreter.closed:
                await self._interpreter.aclose()
        except BeepHostError as exc:
            log.info("closing the interpreter: %s", exc.code)
        finally:
            await self.client.aclose()


class InstallFailed(Exception):
    """An install the resolver or the controller refused; the message says why."""


class SandboxSource(Protocol):
    """Where sandboxes come from."""

    #: What ``reset(new_sandbox=True)`` and ``install_packages`` can do with it.
    replaceable: bool

    async def prepare(self) -> None:
        """Whatever must exist before the first claim (idempotent; raises why not)."""
        ...

    async def claim(self) -> Sandbox: ...

    async def release(self, sandbox: Sandbox) -> None: ...

    async def install(self, sandbox: Sandbox, packages: list[str]) -> list[str]: ...

    async def aclose(self) -> None: ...


class FixedBackend:
    """One backend given by URL and token: every claim connects to it (stdio: one user)."""

    replaceable = False

    def __init__(self, url: str, token: str | None, timeout: Timeout) -> None:
        self._url, self._token, self._timeout = url, token, timeout

    async def prepare(self) -> None:
        return None

    async def claim(self) -> Sandbox:
        return Sandbox(
            aconnect(self._url, token=self._token, timeout=self._timeout), None
        )

    async def release(self, sandbox: Sandbox) -> None:
        await sandbox.aclose()

    async def install(self, sandbox: Sandbox, packages: list[str]) -> list[str]:
        raise InstallFailed(
            "this server was given one fixed backend, without its controller: packages "
            "cannot be added here; ask the user to add them to the backend's environment"
        )

    async def aclose(self) -> None:
        return None


@dataclass(frozen=True)
class Provision:
    """What the server sets up on the controller before its first claim: the
    environment (created when missing) and its warm pool (0: left alone)."""

    create: bool = False
    requirements: tuple[str, ...] = ()
    #: The environment's egress allow-list (None: no network).
    egress: Mapping[str, Any] | None = None
    pool_size: int = 0
    build_timeout: float = 1800.0


class PooledBackends:
    """Backends of an environment from the controller: a claim takes a warm pool's
    member when there is one (milliseconds), else starts a backend."""

    replaceable = True

    def __init__(
        self,
        controller: AsyncControllerClient,
        environment: str,
        kind: BackendKind,
        *,
        idle_timeout: float,
        install_timeout: float,
        timeout: Timeout,
        provision: Provision | None = None,
    ) -> None:
        self._controller = controller
        self._environment, self._kind = environment, kind
        self._idle_timeout, self._install_timeout = idle_timeout, install_timeout
        self._timeout = timeout
        self._provision = provision or Provision()
        self._prepared = not (self._provision.create or self._provision.pool_size)
        self._preparing = asyncio.Lock()

    async def prepare(self) -> None:
        # Once per process: a failure (the controller not up yet, a failed build) is
        # tried again by the next caller, and its error reaches the model typed.
        if self._prepared:
            return
        async with self._preparing:
            if self._prepared:
                return
            if self._provision.create:
                await self._ensure_environment()
            if self._provision.pool_size:
                await self._controller.set_pool(
                    self._environment, self._kind, self._provision.pool_size
                )
                log.info(
                    "asked for a warm pool of %d %s sandboxes of %s",
                    self._provision.pool_size,
                    self._kind,
                    self._environment,
                )
            self._prepared = True

    async def _ensure_environment(self) -> None:
        name = self._environment
        try:
            env = await self._controller.ensure_environment(
                name,
                requirements=self._provision.requirements,
                egress=self._provision.egress,
            )
        except Conflict:
            # The operator's own definition of that name: used as it is.
            env = await self._controller.environment(name)
        if env.status != "ready":
            log.info("building the environment %s (job %s)", name, env.job_id)
            if env.job_id is not None:
                await self._controller.wait_job(
                    env.job_id, timeout=self._provision.build_timeout
                )
            env = await self._controller.environment(name)
        if env.status != "ready":
            raise Unavailable(
                f"the environment {name} is {env.status}: its build failed; the "
                "operator can see why in the controller's job log"
            )
        log.info("the environment %s is ready", name)

    async def claim(self) -> Sandbox:
        await self.prepare()
        # The controller's own idle timeout, a little past ours: a backend whose MCP
        # server died still stops.
        backend = await self._controller.start_backend(
            self._environment, self._kind, idle_timeout=self._idle_timeout + 60
        )
        try:
            if backend.status != "ready":
                await self._controller.wait_backend(backend.id, timeout=120)
            client = await self._controller.connect_backend(
                backend.id, timeout=self._timeout
            )
        except BaseException:
            await self._stop(backend.id)
            raise
        log.info("claimed backend %s of %s", backend.id, self._environment)
        return Sandbox(client, backend.id)

    async def release(self, sandbox: Sandbox) -> None:
        try:
            await sandbox.aclose()
        finally:
            if sandbox.backend_id is not None:
                await self._stop(sandbox.backend_id)

    async def _stop(self, backend_id: str) -> None:
        try:
            await self._controller.stop_backend(backend_id)
            log.info("stopped backend %s", backend_id)
        except BeepHostError as exc:
            log.warning("stopping backend %s: %s", backend_id, exc.code)

    async def install(self, sandbox: Sandbox, packages: list[str]) -> list[str]:
        assert sandbox.backend_id is not None
        job = await self._controller.install(sandbox.backend_id, packages)
        job = await self._controller.wait_job(job.id, timeout=self._install_timeout)
        if not job.succeeded:
            raise InstallFailed(job.error or f"the install job ended {job.status}")
        return [
            p.name
            for p in await self._controller.installed_packages(sandbox.backend_id)
        ]

    async def aclose(self) -> None:
        await self._controller.aclose()

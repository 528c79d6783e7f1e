"""Use cases of the controller: runtimes and environments (backends live in backends/).

Routes call these; these call the store, the job runner and the image builder. All of it
is blocking (sqlite3, docker-py, uv): routes are plain ``def`` endpoints, which FastAPI
runs in its thread pool.
"""

import importlib.metadata
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

from beephost_controller.disk import release_image
from beephost_controller.egress import check_policy, parse_internal_ranges
from beephost_controller.jobs import JobLog, JobRunner
from beephost_controller.ports import BaseImageRef, ImageBuilder
from beephost_controller.requirements import check_count, check_requirements
from beephost_controller.resolver import Lock, ResolutionError
from beephost_controller.rows import EnvironmentRow, JobRow, RuntimeRow
from beephost_controller.schemas.environments import EnvironmentCreate
from beephost_controller.settings import Settings
from beephost_controller.store import SqliteStore
from beephost_protocol.errors import Conflict, InvalidRequest

logger = logging.getLogger(__name__)

#: The environment variable that lists the runtimes a controller offers.
PYTHONS_SETTING = f"{Settings.model_config['env_prefix']}PYTHONS"

ADMIN_ENVIRONMENT = "admin"
#: The client SDK the admin environment's image carries in /opt/env (installed from
#: our own wheels without dependencies); its third-party requirements join the lock.
SDK_DISTRIBUTIONS = ("beephost-protocol", "beephost-client")


Resolve = Callable[[list[str], str], Lock]


def sdk_requirements() -> list[str]:
    """The client SDK's third-party requirements (``pydantic>=...``), resolved into the
    admin environment's lock.

    Read from the SDK's distribution metadata (its ``pyproject.toml`` dependencies):
    our own packages and requirements of extras are left out.
    """
    found: set[str] = set()
    for distribution in SDK_DISTRIBUTIONS:
        for requirement in importlib.metadata.requires(distribution) or ():
            spec, _, marker = requirement.partition(";")
            name = re.split(r"[\s\[<>=!~(@]", spec.strip(), maxsplit=1)[0]
            if "extra" in marker or name.lower().startswith(("beephost-", "beephost_")):
                continue
            found.add(requirement.strip())
    return sorted(found)


def _definition(row: EnvironmentRow) -> tuple[object, ...]:
    """What makes two environments of one name the same (an ensure's question)."""
    return (row.python, row.requirements, row.network, row.egress_allow)


@dataclass(eq=False)  # one service: compared by identity
class ControllerService:
    """Runtimes and environments, with builds as jobs."""

    settings: Settings
    store: SqliteStore
    jobs: JobRunner
    builder: ImageBuilder
    resolve: Resolve
    #: An environment's error is readable through the API: no secret in it.
    redact: Callable[[str], str] = str
    #: The engine's ``prepare_egress``, once the engine exists (``system.py``).
    prepare_egress: Callable[[Callable[[str], None]], None] | None = None

    # -- runtimes -------------------------------------------------------------------------

    def runtimes(self) -> list[tuple[str, RuntimeRow | None]]:
        known = {row.python: row for row in self.store.runtimes()}
        return [(python, known.get(python)) for python in self.settings.pythons]

    def init_runtime(self, python: str | None) -> JobRow:
        """Ensure the base image of a runtime, as a job."""
        python = self._python(python)

        def job(log: JobLog) -> None:
            self._ensure_runtime(python, log)

        return self.jobs.submit("init", python, job)

    def _ensure_runtime(self, python: str, log: Callable[[str], None]) -> BaseImageRef:
        base = self.builder.ensure_base(python, log)
        self.store.put_runtime(
            RuntimeRow(
                base.python, base.image, base.image_id, base.version, base.source
            )
        )
        log(f"runtime {python}: CPython {base.version} in {base.image}")
        return base

    def _python(self, python: str | None) -> str:
        python = python or self.settings.default_python
        if python not in self.settings.pythons:
            offered = ", ".join(self.settings.pythons)
            raise InvalidRequest(  # a user cannot fix this alone: say who can, and how
                f"no runtime {python!r}; offered: {offered} (an operator offers "
                f"another with the controller setting {PYTHONS_SETTING})",
                {"offered": self.settings.pythons},
            )
        return python

    # -- environments ---------------------------------------------------------------------

    def create_environment(
        self, spec: EnvironmentCreate, *, ensure: bool
    ) -> tuple[EnvironmentRow, bool]:
        """Create an environment and queue its build.

        Returns:
            The row and whether it was created (False: an equal one existed, ensure mode).

        Raises:
            Conflict: The name exists (create), or exists with another definition (ensure).
            InvalidRequest: More requirements than the settings allow, a direct
                reference with a URL scheme they refuse, or an egress policy that
                names what no policy may (egress.check_policy).
        """
        check_count(spec.requirements, self.settings.max_requirements)
        check_requirements(spec.requirements, self.settings.requirement_url_schemes)
        if spec.egress is not None:
            # Its secrets are looked up at each start (egress.check_start), not now:
            # an environment may be made before its secrets are stored.
            check_policy(
                spec.egress, parse_internal_ranges(self.settings.egress_internal_ranges)
            )
        admin = spec.name == ADMIN_ENVIRONMENT
        row = EnvironmentRow(
            name=spec.name,
            python=self._python(spec.python),
            requirements=spec.requirements,
            network=spec.network,
            admin=admin,
            egress_allow=None if spec.egress is None else tuple(spec.egress.allow),
        )
        if not self.store.insert_environment(row):
            existing = self.store.environment(spec.name)
            assert existing is not None
            same = _definition(existing) == _definition(row)
            if ensure and same:
                if existing.status == "failed":  # ensure retries a failed build
                    self._queue_build(existing)
                return self.environment(existing.name), False
            raise Conflict(
                f"environment {spec.name!r} exists"
                + ("" if same else " with another definition"),
                {"environment": spec.name},
            )
        self._queue_build(row)
        return self.environment(row.name), True

    def ensure_admin_environment(self) -> tuple[EnvironmentRow, bool]:
        """The admin environment, created on the default runtime if it is missing.

        An existing one is returned whatever its requirements; a failed build is
        queued again.
        """
        existing = self.store.environment(ADMIN_ENVIRONMENT)
        if existing is None:
            return self.create_environment(
                EnvironmentCreate(name=ADMIN_ENVIRONMENT), ensure=True
            )
        if existing.status == "failed":
            self._queue_build(existing)
        return self.environment(ADMIN_ENVIRONMENT), False

    def environment(self, name: str) -> EnvironmentRow:
        return self.store.existing_environment(name)

    def delete_environment(
        self, name: str, drain: Callable[[str], object] = lambda name: None
    ) -> None:
        """Forget an environment, and remove its image unless another one uses it.

        Args:
            drain: Removes the environment's unclaimed pool members; called once its
                row (and with it its pool settings) is gone, so no refill follows.

        Raises:
            NotFound: No such environment.
            Conflict: It has backends (pool members do not count).
        """
        row = self.environment(name)
        if any(not backend.pooled for backend in self.store.backends(name)):
            raise Conflict(
                f"environment {name!r} has backends; stop them first",
                {"environment": name},
            )
        self.store.delete_environment(name)
        drain(name)
        if row.image is not None:
            release_image(self.store, self.builder, row.image, self.settings.name)

    def _queue_build(self, row: EnvironmentRow) -> None:
        # Linked before the job can run: a job that fails at once keeps its error.
        self.jobs.submit(
            "build",
            row.name,
            self._build_job(row.name),
            link=lambda job: self.store.set_environment_job(row.name, job.id),
        )

    def _build_job(self, name: str) -> Callable[[JobLog], None]:
        def job(log: JobLog) -> None:
            self.build_environment(name, log)

        return job

    def resume(self, row: JobRow) -> Callable[[JobLog], None] | None:
        """Job resumer for JobRunner.recover: builds and inits are safe to run again."""
        if row.kind == "build" and self.store.environment(row.target) is not None:
            return self._build_job(row.target)
        if row.kind == "init":
            python = row.target

            def init(log: JobLog) -> None:
                self._ensure_runtime(python, log)

            return init
        return None

    def _known_lock(self, row: EnvironmentRow) -> Lock | None:
        """The lock of a ready environment with the same runtime and requirements
        (and the same kind: an admin lock also holds the SDK's requirements)."""
        for other in self.store.environments():
            same = (other.python, other.requirements, other.admin) == (
                row.python,
                row.requirements,
                row.admin,
            )
            if same and other.status == "ready" and other.lock is not None:
                return Lock(other.lock)
        return None

    def build_environment(self, name: str, log: JobLog) -> None:
        """The build job: resolve, address by content, reuse or build, record."""
        row = self.environment(name)
        try:
            base = self._ensure_runtime(row.python, log)
            lock = self._known_lock(row)
            if lock is None:
                requirements = list(row.requirements)
                log(
                    f"resolving {len(requirements)} requirement(s) for CPython {row.python}"
                )
                if row.admin:
                    sdk = sdk_requirements()
                    log(f"with the client SDK's: {', '.join(sdk) or 'none'}")
                    requirements += sdk
                lock = self.resolve(requirements, row.python)
            else:
                log("an equal environment is ready: reusing its lock, no resolution")
            tag = self.builder.ensure_environment(
                base=base, lock=lock, admin=row.admin, log=log
            )
        except ResolutionError as exc:
            self.store.environment_failed(
                name, self.redact(f"resolution failed: {exc}")
            )
            raise
        except Exception as exc:
            self.store.environment_failed(name, self.redact(str(exc)))
            raise
        self.store.environment_ready(name, lock=lock.text, image=tag)
        log(f"environment {name} ready")
        if row.egress_allow is not None:
            self._ensure_egress_proxy(log)

    def _ensure_egress_proxy(self, log: JobLog) -> None:
        """The egress proxy's image, made with the environment whose policy is an
        allow-list, so that its first start rarely waits for it. A failure fails
        no environment (its backends may start without the allow-list): the start
        tries again, and says why."""
        try:
            tag = self.builder.ensure_egress_proxy(log)
        except Exception as exc:
            log(self.redact(f"the egress proxy's image could not be made: {exc}"))
            logger.warning("the egress proxy's image could not be made: %s", exc)
            return
        log(f"egress proxy image {tag}")
        if self.prepare_egress is None:
            return
        try:
            self.prepare_egress(log)
        except Exception as exc:
            # The first allow-list start makes it again, and says why if it cannot.
            log(self.redact(f"the egress proxy could not be started yet: {exc}"))
            logger.warning("the egress proxy could not be started yet: %s", exc)

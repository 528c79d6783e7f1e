"""The controller's composition root: the object graph, its threads, the stop order."""

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable

from beephost_controller.backends import BackendService
from beephost_controller.backends.install import PackageInstaller
from beephost_controller.backends.warm_pools import Pools
from beephost_controller.engine.code_volumes import CODE_FILL_WAIT
from beephost_controller.engine.docker_backends import DockerBackends
from beephost_controller.engine.no_engine import (
    REASON,
    NoEngineBackends,
    NoEngineBuilder,
    NoEnginePublisher,
    engine_configured,
)
from beephost_controller.jobs import JobRunner
from beephost_controller.metrics import ControllerMetrics
from beephost_controller.ports import (
    BackendContainers,
    BackendEngine,
    ContainerEngineError,
    ImageBuilder,
    ImagePublisher,
)
from beephost_controller.probes import probe
from beephost_controller.redact import Redactor
from beephost_controller.resolver import Lock, resolve
from beephost_controller.secret_store import SecretStore
from beephost_controller.service import ControllerService
from beephost_controller.settings import Settings
from beephost_controller.store import SqliteStore

logger = logging.getLogger(__name__)

Resolver = Callable[[list[str], str], Lock]


class ControllerSystem:
    """Everything the controller runs, built from its settings, started and stopped in
    order, as uvicorn's ``Server`` is: ``create_app`` builds the HTTP API around one.

    The constructor keeps its arguments and does no I/O. ``startup`` opens the store,
    builds the graph (job runner, use cases, backends, installer, pools), recovers
    unfinished jobs and starts the supervisor task, which reconciles the rows with the
    engine's containers, then starts the pool filler thread and sweeps the backends
    forever. ``shutdown`` stops them in the reverse order.

    Args:
        settings: The controller's settings.
        builder: The image builder; the Docker-backed one if omitted.
        resolver: Requirement resolution; uv against the configured index if omitted.
        containers: The Docker engine's backend containers (tests' in memory); the
            real ones if omitted.
        engine: Where backends run; the settings' engine (on ``containers``) if
            omitted.
        redactor: The secrets to keep out of job logs and errors (``__main__`` shares
            it with the log handlers' filter); from the settings if omitted.
    """

    metrics: ControllerMetrics
    store: SqliteStore
    jobs: JobRunner
    service: ControllerService
    engine: BackendEngine
    backends: BackendService
    installer: PackageInstaller
    pools: Pools
    secrets: SecretStore

    def __init__(
        self,
        settings: Settings,
        *,
        builder: ImageBuilder | None = None,
        resolver: Resolver | None = None,
        containers: BackendContainers | None = None,
        engine: BackendEngine | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        self.settings = settings
        self.redactor = redactor or Redactor.from_settings(settings)
        self._builder = builder
        self._resolver = resolver
        self._containers = containers
        self._engine = engine
        #: The rows and the engine's containers agree (readiness waits for it).
        self.reconciled = False
        self._stop_filling = threading.Event()
        self._filler: threading.Thread | None = None
        self._supervisor: asyncio.Task[None] | None = None

    async def startup(self) -> None:
        """Build the object graph, recover jobs and start the supervisor."""
        settings, redactor = self.settings, self.redactor
        self.metrics = metrics = ControllerMetrics()
        configured = engine_configured()
        given = self._containers is not None or self._engine is not None
        if not configured and (self._builder is None or not given):
            logger.warning("%s: builds and backend starts will fail", REASON)
        self.store = store = SqliteStore(settings.database)
        # Tokens of backends started by an earlier run are secrets of this one too.
        redactor.add(*(row.token for row in store.backends()))
        self.secrets = secrets = SecretStore(settings.secret_directory)
        redactor.add(*secrets.values())
        self.jobs = runner = JobRunner(
            store,
            settings.build_workers,
            on_finish=metrics.job_finished,
            redact=redactor.redact,
        )
        builder = self._builder or (
            _docker_builder(settings) if configured else NoEngineBuilder()
        )
        self.service = service = ControllerService(
            settings,
            store,
            runner,
            builder,
            self._resolver or _uv_resolver(settings),
            redact=redactor.redact,
        )
        self.engine, remove_builds = (
            (self._engine, lambda: 0)
            if self._engine is not None
            else _backend_engine(
                settings,
                self._containers,
                configured=configured,
                images=builder,
                secrets=secrets,
            )
        )
        metrics.track_egress(self.engine.egress_counts)
        metrics.track_relays(self.engine.relay_counts)
        service.prepare_egress = self.engine.prepare_egress
        self.backends = backends = BackendService(
            settings,
            store,
            self.engine,
            metrics,
            probe=probe,
            # Admin backends' controller tokens: only their digest is stored.
            add_secret=redactor.add,
            redact=redactor.redact,
            secret_exists=secrets.exists,
        )
        self.installer = PackageInstaller(
            self.engine,
            store,
            backends.refresh,
            runner,
            service.resolve,
            url_schemes=settings.requirement_url_schemes,
        )
        self.pools = Pools(backends)
        # Before the jobs resume: every build container of ours is a dead build's.
        await asyncio.to_thread(_remove_leftover_builds, remove_builds)
        recovered = runner.recover(service.resume)
        if recovered:
            logger.info("recovered %d unfinished job(s)", len(recovered))
        self._filler = threading.Thread(
            target=self.pools.run,
            args=(self._stop_filling,),
            name="beephost-pools",
            daemon=True,
        )
        self._supervisor = asyncio.create_task(self._supervise(self._filler.start))

    async def shutdown(self) -> None:
        """Stop in order: the supervisor, the pool filler, the engine's background
        work (copies into code volumes, relays made ahead), the backends (if the
        settings say so), the jobs, then the store."""
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        self._stop_filling.set()
        self.pools.wake()
        if self._filler is not None and self._filler.is_alive():
            # A pass may be starting a member: at most one container start.
            await asyncio.to_thread(self._filler.join, 60)
        if not await asyncio.to_thread(self.engine.settle, CODE_FILL_WAIT):
            logger.warning(
                "the engine's background work (a copy into code volumes, a relay "
                "being made ahead) is left unfinished after %g s",
                CODE_FILL_WAIT,
            )
        if self.settings.stop_backends_on_shutdown:
            stopped = await asyncio.to_thread(self.backends.stop_all)
            logger.info("removed %d backend container(s) at shutdown", stopped)
        self.jobs.shutdown()
        self.store.close()

    async def _supervise(self, on_reconciled: Callable[[], None]) -> None:
        """Reconcile once (readiness waits for it), then sweep every backend forever.

        Args:
            on_reconciled: Called once the rows and containers agree (the pool filler
                starts then: before, it would count members that are about to vanish).
        """
        while not self.reconciled:
            try:
                counts = await asyncio.to_thread(self.backends.reconcile)
            except Exception:
                logger.exception("reconciliation failed; retrying")
                await asyncio.sleep(self.settings.supervise_interval)
                continue
            logger.info("reconciled backends: %s", counts)
            self.reconciled = True
            on_reconciled()
        while True:
            await asyncio.sleep(self.settings.supervise_interval)
            try:
                await asyncio.to_thread(self.backends.supervise)
            except Exception:
                logger.exception("supervising backends failed")


def _remove_leftover_builds(remove: Callable[[], int]) -> None:
    try:
        removed = remove()
    except ContainerEngineError as exc:  # no engine yet: a build removes its own
        logger.warning("could not remove leftover build containers: %s", exc)
        return
    if removed:
        logger.info("removed %d leftover build container(s)", removed)


def _uv_resolver(settings: Settings) -> Resolver:
    def run(requirements: list[str], python: str) -> Lock:
        ca = str(settings.ca_bundle) if settings.ca_bundle else None
        return resolve(requirements, python, index_url=settings.index_url, ca_bundle=ca)

    return run


def _docker_builder(settings: Settings) -> ImageBuilder:
    from beephost_controller.images.builder import DockerImageBuilder

    builder: ImageBuilder = DockerImageBuilder(settings)
    return builder


def _backend_engine(
    settings: Settings,
    containers: BackendContainers | None,
    *,
    configured: bool,
    images: ImageBuilder,
    secrets: SecretStore,
) -> tuple[BackendEngine, Callable[[], int]]:
    """Where backends run, and how to remove the builds a killed controller left.

    The one place an engine is chosen, by the ENGINE setting: nothing else in the
    controller knows which one runs.
    """
    return _ENGINES[settings.engine](settings, containers, configured, images, secrets)


def _docker_engine(
    settings: Settings,
    containers: BackendContainers | None,
    configured: bool,
    images: ImageBuilder,
    secrets: SecretStore,
) -> tuple[BackendEngine, Callable[[], int]]:
    if containers is None and not configured:
        return NoEngineBackends(), lambda: 0
    docker = DockerBackends(
        settings,
        containers or _docker_containers(),
        extra_labels=settings.labels,
        images=images,
        secrets=secrets,
    )
    return docker, docker.remove_leftover_builds


def _kube_engine(
    settings: Settings,
    containers: BackendContainers | None,
    configured: bool,
    images: ImageBuilder,
    secrets: SecretStore,
) -> tuple[BackendEngine, Callable[[], int]]:
    """Pods on a cluster; the Docker engine beside the controller builds and pushes
    the images (and its leftover builds are removed as on Docker)."""
    from beephost_controller.engine.kube_api import KubeApi
    from beephost_controller.engine.kube_backends import KubeBackends
    from beephost_controller.kube_settings import KubernetesSettings

    kube = KubernetesSettings()
    config = str(kube.kubeconfig) if kube.kubeconfig else None
    try:
        api = KubeApi.connect(config, kube.namespace)
    except ContainerEngineError as exc:
        logger.error("no Kubernetes API: %s; backend starts will fail", exc)
        return NoEngineBackends(f"the Kubernetes API is out of reach: {exc}"), lambda: 0
    publisher: ImagePublisher = NoEnginePublisher()
    remove_builds: Callable[[], int] = lambda: 0  # noqa: E731
    if containers is not None or configured:
        from beephost_controller.engine.docker_images import DockerEngine

        docker = DockerEngine.from_env()
        publisher = docker.publisher()
        builds = DockerBackends(
            settings, containers or _docker_containers(), extra_labels=settings.labels
        )
        remove_builds = builds.remove_leftover_builds
    engine = KubeBackends(
        settings,
        kube,
        api,
        publisher,
        images=images,
        secrets=secrets,
        extra_labels=settings.labels,
    )
    return engine, remove_builds


_ENGINES = {"docker": _docker_engine, "kubernetes": _kube_engine}


def _docker_containers() -> BackendContainers:
    from beephost_controller.engine.docker_containers import DockerContainers
    from beephost_controller.engine.docker_images import DockerEngine

    containers: BackendContainers = DockerContainers(DockerEngine.from_env())
    return containers

"""The blocking controller client's runtime and environment calls.

GENERATED from ``_async/_controller_environments.py`` by ``packages/client/scripts/unasync.py``:
do not edit (part of ControllerClient; the docstrings there describe both).
"""

from collections.abc import Iterable, Mapping
from typing import Any

from beephost_client import _controller
from beephost_client._controller_types import (
    BackendType,
    Environment,
    Image,
    Job,
    Limits,
    Pool,
    Runtime,
)
from beephost_client._transports.controller import Request

from ._controller_base import _ControllerBase


class _EnvironmentCalls(_ControllerBase):
    """Runtimes (the CPython versions) and environments (their built images)."""

    # -- runtimes -----------------------------------------------------------------------

    def runtimes(self) -> list[Runtime]:
        """The CPython versions the controller offers.

        Returns:
            One :class:`Runtime` per version, with its exact version once initialised.

        Raises:
            Unauthorized: A token is required and was missing or wrong.

        Example::

            for runtime in controller.runtimes():
                print(runtime.python, runtime.initialised)
        """
        raw = self._json("GET", "/api/v1/runtimes")
        return _controller.many(_controller.runtime, raw, "runtimes")

    def init_runtime(self, python: str | None = None) -> Job:
        """Make sure a runtime's base image exists; a job (see :meth:`wait_job`).

        Args:
            python: The CPython minor version, e.g. ``3.13`` (default: the
                controller's default runtime).

        Returns:
            The queued :class:`Job`.

        Raises:
            InvalidRequest: The controller does not offer that version.

        Example::

            job = controller.init_runtime("3.13")
            job = controller.wait_job(job.id)
            assert job.succeeded
        """
        raw = self._json("POST", "/api/v1/runtimes/init", body={"python": python})
        return _controller.job(raw)

    # -- environments -------------------------------------------------------------------

    def environments(self) -> list[Environment]:
        """Every environment, by name.

        Returns:
            The :class:`Environment` list.

        Raises:
            Unauthorized: A token is required and was missing or wrong.

        Example::

            names = [env.name for env in controller.environments()]
        """
        raw = self._json("GET", "/api/v1/environments")
        return _controller.many(_controller.environment, raw, "environments")

    def environment(self, name: str) -> Environment:
        """One environment.

        Args:
            name: The environment's name.

        Returns:
            The :class:`Environment`, with its build status.

        Raises:
            NotFound: No environment has that name.

        Example::

            env = controller.environment("data")
            print(env.status, env.image)
        """
        return _controller.environment(
            self._json("GET", _controller.environment_path(name))
        )

    def create_environment(
        self,
        name: str,
        *,
        python: str | None = None,
        requirements: Iterable[str] = (),
        requirements_txt: str | None = None,
        network: bool = False,
        egress: Mapping[str, Any] | None = None,
    ) -> Environment:
        """Create an environment; its image builds as a job (``job_id``).

        Args:
            name: A unique name: lowercase letters, digits, ``.``, ``_`` and ``-``.
            python: The CPython minor version (default: the controller's default).
            requirements: Requirement specifiers, e.g. ``["pandas>=2"]``.
            requirements_txt: The text of a requirements.txt, merged with
                ``requirements`` (options such as ``-r`` are refused).
            network: Whether the environment's backends get the whole network
                (unsafe for model code).
            egress: An allow-list instead, as the API takes it:
                ``{"allow": [{"host": "api.example.com", "ports": [443]}]}``
                (docs/operators/egress.md); not with ``network``.

        Returns:
            The new :class:`Environment` (status ``pending``).

        Raises:
            Conflict: An environment of that name exists.
            InvalidRequest: A bad name, version or requirement.

        Example::

            env = controller.create_environment("data", requirements=["pandas"])
            controller.wait_job(env.job_id)
        """
        body = _controller.environment_body(
            name, python, requirements, requirements_txt, network, egress
        )
        return _controller.environment(
            self._json("POST", "/api/v1/environments", body=body)
        )

    def ensure_environment(
        self,
        name: str,
        *,
        python: str | None = None,
        requirements: Iterable[str] = (),
        requirements_txt: str | None = None,
        network: bool = False,
        egress: Mapping[str, Any] | None = None,
    ) -> Environment:
        """Create an environment unless an equal one exists (idempotent).

        An existing environment with the same definition is returned as it is; one
        whose build failed is built again.

        Args:
            name: The environment's name.
            python: The CPython minor version (default: the controller's default).
            requirements: Requirement specifiers.
            requirements_txt: The text of a requirements.txt.
            network: Whether its backends get the whole network.
            egress: An allow-list instead (see :meth:`create_environment`).

        Returns:
            The :class:`Environment`, existing or new.

        Raises:
            Conflict: The name exists with another definition.
            InvalidRequest: A bad name, version or requirement.

        Example::

            env = controller.ensure_environment("data", requirements=["pandas"])
            if env.status != "ready":
                controller.wait_job(env.job_id)
        """
        body = _controller.environment_body(
            name, python, requirements, requirements_txt, network, egress
        )
        raw = self._json("PUT", _controller.environment_path(name), body=body)
        return _controller.environment(raw)

    def delete_environment(self, name: str) -> None:
        """Forget an environment; its image is removed unless another environment
        with the same content uses it.

        Args:
            name: The environment's name.

        Raises:
            NotFound: No environment has that name.
            Conflict: Backends of the environment run; stop them first.

        Example::

            controller.delete_environment("data")
        """
        self._send(Request("DELETE", _controller.environment_path(name)))

    def images(self) -> list[Image]:
        """The environment images on the controller's engine, with who uses them.

        Returns:
            One :class:`Image` each; those without ``environments`` are unused.

        Example::

            unused = [i for i in controller.images() if not i.environments]
        """
        return _controller.images(self._json("GET", "/api/v1/images"), "images")

    def prune_images(self) -> list[Image]:
        """Remove every environment image no environment uses.

        Returns:
            The images removed (their ``disk_bytes`` add up to the space given
            back).

        Raises:
            Conflict: A job is queued or running; prune once it has finished.

        Example::

            freed = sum(i.disk_bytes for i in controller.prune_images())
        """
        raw = self._json("POST", "/api/v1/images/prune")
        return _controller.images(raw, "removed")

    # -- warm pools -----------------------------------------------------------------------

    def set_pool(
        self,
        environment: str,
        type: BackendType,
        size: int,
        *,
        limits: Limits | Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> Pool:
        """Keep ``size`` backends of an environment and type started and ready, so
        that :meth:`start_backend` hands one out in milliseconds.

        A start claims a member when it names no token, port or bind address, and
        exactly the pool's ``limits`` and ``options`` (none: the defaults); the
        controller refills the pool in the background. Size 0 keeps none.

        Returns:
            The :class:`Pool` as it is now (its members may still be starting).

        Raises:
            NotFound: No environment has that name.
            InvalidRequest: A size out of range (0 to 64), or a bad limit or option.

        Example::

            controller.set_pool("data", "http", 2)
        """
        body = _controller.pool_body(size, limits, options)
        path = _controller.pool_path(environment, type)
        return _controller.pool(self._json("PUT", path, body=body))

    def pools(self, environment: str | None = None) -> list[Pool]:
        """The warm pools in effect (an environment's own, or the controller's
        default), with their ready and starting members.

        Example::

            ready = sum(p.ready for p in controller.pools("data"))
        """
        path = "/api/v1/pools"
        if environment is not None:
            path = f"{_controller.environment_path(environment)}/pools"
        return _controller.many(_controller.pool, self._json("GET", path), "pools")

    def reset_pool(self, environment: str, type: BackendType) -> None:
        """Drop an environment's own pool setting: the controller's default applies
        (none unless its ``POOL_SIZE`` names the type).

        Raises:
            NotFound: No environment has that name.

        Example::

            controller.reset_pool("data", "http")
        """
        self._send(Request("DELETE", _controller.pool_path(environment, type)))

    def admin_environment(self) -> Environment:
        """Make sure the admin environment exists (its image may build as a job).

        Returns:
            The admin :class:`Environment`; wait for ``job_id`` unless it is ready.

        Raises:
            Unauthorized: A token is required and was missing or wrong.

        Example::

            env = controller.admin_environment()
            if env.status != "ready" and env.job_id:
                controller.wait_job(env.job_id)
        """
        return _controller.environment(self._json("POST", "/api/v1/environments/admin"))

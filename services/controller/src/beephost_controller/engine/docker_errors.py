"""docker-py's exceptions mapped to the ``ports`` errors, and the small conversions the Docker adapters share."""

import socket
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

import docker
import docker.errors
import docker.utils
import requests.exceptions
from docker.constants import DEFAULT_UNIX_SOCKET

from beephost_controller.ports import (
    ContainerConfigRefused,
    ContainerEngineError,
    ContainerGone,
    ImageInfo,
    ImageNotFoundError,
    PortInUse,
)

#: How the engine (20.10 to 27) says a published host port is taken: by a container
#: ("port is already allocated") or by another process (its proxy's bind failed).
_PORT_IN_USE = ("port is already allocated", "address already in use")
#: How it says a container is on its way out (409): "...which is dead or marked for
#: removal", "removal of container ... is already in progress".
_BEING_REMOVED = ("marked for removal", "is dead", "removal of container")


@contextmanager
def mapped_errors(action: str) -> Iterator[None]:
    # One translation point from docker-py's exceptions to ours (R9 in spirit).
    try:
        yield
    except (docker.errors.ImageNotFound, docker.errors.NotFound) as exc:
        raise ImageNotFoundError(f"{action}: {exc}") from exc
    except docker.errors.APIError as exc:
        if exc.status_code == 400:  # the engine's "invalid parameter"
            raise ContainerConfigRefused(f"{action}: {exc.explanation}") from exc
        if exc.status_code == 409 and any(
            sign in str(exc.explanation) for sign in _BEING_REMOVED
        ):
            raise ContainerGone(f"{action}: {exc.explanation}") from exc
        if any(sign in str(exc.explanation) for sign in _PORT_IN_USE):
            raise PortInUse(f"{action}: {exc.explanation}") from exc
        raise ContainerEngineError(f"{action}: {exc}") from exc
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise ContainerEngineError(f"{action}: {exc}") from exc


T = TypeVar("T")


def found_or_none(action: str, look: Callable[[], T]) -> T | None:
    """``look()``, or None when the engine has no such object.

    Raises:
        ContainerEngineError: The engine failed otherwise.
    """
    try:
        return look()
    except docker.errors.NotFound:  # ImageNotFound too
        return None
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise ContainerEngineError(f"{action}: {exc}") from exc


def check_unix_socket(timeout: float) -> None:
    # docker-py leaks its socket when connecting to a Unix socket fails (a
    # ResourceWarning, an error under pytest's filterwarnings=error), so try the
    # socket first with one we close ourselves.
    base_url = docker.utils.kwargs_from_env().get("base_url") or DEFAULT_UNIX_SOCKET
    scheme, _, path = str(base_url).partition("://")
    if scheme not in ("unix", "http+unix"):
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(path)
        except OSError as exc:
            raise ContainerEngineError(
                f"connect to the Docker engine at {path}: {exc}"
            ) from exc


def image_info(image: Any) -> ImageInfo:
    attrs: dict[str, Any] = image.attrs
    return ImageInfo(
        id=str(image.id),
        tags=tuple(str(tag) for tag in image.tags),
        labels={str(k): str(v) for k, v in (image.labels or {}).items()},
        size=int(attrs.get("Size") or 0),
        repo_digests=tuple(str(d) for d in attrs.get("RepoDigests") or ()),
    )


def split_tag(ref: str) -> tuple[str, str]:
    # "host:5000/repo:tag" -> ("host:5000/repo", "tag"); no tag means "latest".
    repository, sep, tag = ref.rpartition(":")
    if not sep or "/" in tag:
        return ref, "latest"
    return repository, tag


def label_filters(labels: Mapping[str, str]) -> dict[str, list[str]]:
    return {"label": [f"{key}={value}" for key, value in labels.items()]}

"""``KubeApi``: what the Kubernetes engine asks of the API server, on the official client.

Objects go in and come out as plain JSON (dicts): the manifests are built by
``kube_manifests`` and read by ``kube_status``, so only this module knows the client.
Every call is namespaced (the controller's Role grants nothing cluster-wide), and the
client's ``ApiException`` becomes the controller's engine errors here, once.
"""

import contextlib
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import kubernetes.client
import kubernetes.config
import kubernetes.stream
import urllib3.exceptions
import websocket
from kubernetes.client.exceptions import ApiException
from kubernetes.stream.ws_client import ERROR_CHANNEL

from beephost_controller.ports import (
    ContainerConfigRefused,
    ContainerEngineError,
    ContainerGone,
)

Manifest = dict[str, Any]

#: Seconds a call to the API server may take to connect, then to answer: a server
#: that never answers fails the call and never hangs its thread (one thread sweeps
#: every backend: a hung call would stop every lifetime and idle timeout).
REQUEST_TIMEOUT = (10.0, 60.0)
#: Seconds an exec's websocket may wait to connect or for the rest of a frame (the
#: client sets none: ``stream`` makes its socket with websocket-client's default).
EXEC_SOCKET_TIMEOUT = 30.0

#: The kinds the engine makes, by the client method families that handle them.
_KINDS = {
    "Pod": ("core", "pod"),
    "Service": ("core", "service"),
    "Secret": ("core", "secret"),
    "NetworkPolicy": ("networking", "network_policy"),
    "ConfigMap": ("core", "config_map"),
    "Deployment": ("apps", "deployment"),
}


@contextlib.contextmanager
def mapped_errors(action: str) -> Iterator[None]:
    """The client's errors as the controller's: gone, refused, or the engine's."""
    try:
        yield
    except ApiException as exc:
        detail = _message(exc)
        if exc.status == 404:
            raise ContainerGone(f"{action}: {detail}") from exc
        if exc.status in (400, 422):
            raise ContainerConfigRefused(f"{action}: {detail}") from exc
        raise ContainerEngineError(f"{action}: {exc.status} {detail}") from exc
    except (
        urllib3.exceptions.HTTPError,
        OSError,
        kubernetes.config.ConfigException,
        websocket.WebSocketException,  # an exec's stream cut or timed out
    ) as exc:
        raise ContainerEngineError(f"{action}: {exc}") from exc


def _message(exc: ApiException) -> str:
    """The API server's own words (its Status object's message), else the reason."""
    try:
        return str(json.loads(exc.body or "{}").get("message") or exc.reason)
    except (ValueError, AttributeError):
        return str(exc.reason)


class KubeApi:
    """The namespaced calls of the Kubernetes engine.

    Args:
        api: A ``kubernetes.client.ApiClient`` (see ``connect``).
        namespace: The namespace of every object the engine makes.
    """

    def __init__(self, api: kubernetes.client.ApiClient, namespace: str) -> None:
        self.namespace = namespace
        self._api = api
        self._configuration = api.configuration
        self._core = kubernetes.client.CoreV1Api(api)
        self._networking = kubernetes.client.NetworkingV1Api(api)
        self._apps = kubernetes.client.AppsV1Api(api)
        self._version = kubernetes.client.VersionApi(api)
        self._custom = kubernetes.client.CustomObjectsApi(api)
        # Process-wide, but only exec streams use websocket-client here.
        websocket.setdefaulttimeout(EXEC_SOCKET_TIMEOUT)

    @classmethod
    def connect(cls, kubeconfig: str | None, namespace: str) -> "KubeApi":
        """From a kubeconfig file, or the pod's service account when ``None`` (a
        controller running in the cluster)."""
        configuration = kubernetes.client.Configuration()
        with mapped_errors("load the Kubernetes configuration"):
            if kubeconfig:
                kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
                    config_file=kubeconfig, client_configuration=configuration
                )
            else:
                kubernetes.config.load_incluster_config(configuration)  # type: ignore[no-untyped-call]
        return cls(kubernetes.client.ApiClient(configuration), namespace)

    def close(self) -> None:
        self._api.close()  # type: ignore[no-untyped-call]

    def server_version(self) -> tuple[int, int]:
        """The API server's (major, minor), e.g. (1, 20)."""
        with mapped_errors("read the server's version"):
            info = self._version.get_code(_request_timeout=REQUEST_TIMEOUT)
        minor = "".join(ch for ch in info.minor if ch.isdigit())
        return int(info.major), int(minor or 0)

    def _call(self, kind: str, verb: str, *args: Any, **kwargs: Any) -> Any:
        group, noun = _KINDS[kind]
        api = {"core": self._core, "networking": self._networking, "apps": self._apps}[
            group
        ]
        method = getattr(api, f"{verb}_namespaced_{noun}")
        return method(
            *args, namespace=self.namespace, _request_timeout=REQUEST_TIMEOUT, **kwargs
        )

    def create(self, manifest: Manifest) -> Manifest:
        """Create an object; the API server's view of it (with its uid)."""
        kind, name = manifest["kind"], manifest["metadata"]["name"]
        with mapped_errors(f"create {kind} {name}"):
            response = self._call(kind, "create", body=manifest, _preload_content=False)
        return _json(response)

    def get(self, kind: str, name: str) -> Manifest | None:
        """An object by name; None when there is none."""
        try:
            with mapped_errors(f"read {kind} {name}"):
                response = self._call(kind, "read", name, _preload_content=False)
        except ContainerGone:
            return None
        return _json(response)

    def list(self, kind: str, labels: Mapping[str, str]) -> list[Manifest]:
        """Every object of ``kind`` carrying all of ``labels``."""
        selector = ",".join(f"{key}={value}" for key, value in sorted(labels.items()))
        with mapped_errors(f"list {kind}s"):
            response = self._call(
                kind, "list", label_selector=selector, _preload_content=False
            )
        items: list[Manifest] = _json(response).get("items", [])
        return items

    def delete(self, kind: str, name: str, *, grace_seconds: int | None = None) -> None:
        """Delete an object (its dependents go with it); one already gone is fine."""
        body = {"propagationPolicy": "Background"}
        if grace_seconds is not None:
            body["gracePeriodSeconds"] = grace_seconds  # type: ignore[assignment]
        try:
            with mapped_errors(f"delete {kind} {name}"):
                # Not deserialized: what a delete answers differs between versions
                # (the object, or a Status) and the client's models know only one.
                self._call(kind, "delete", name, body=body, _preload_content=False)
        except ContainerGone:
            pass

    def pod_metrics(self, pod: str) -> Manifest | None:
        """The pod's ``PodMetrics`` from metrics-server (``metrics.k8s.io``); None
        when the cluster serves no such API or has no sample of the pod yet.

        Raises:
            ContainerEngineError: The API server failed otherwise (or the Role does
                not grant ``get`` on ``pods.metrics.k8s.io``).
        """
        try:
            with mapped_errors(f"read the metrics of {pod}"):
                response = self._custom.get_namespaced_custom_object(
                    "metrics.k8s.io",
                    "v1beta1",
                    self.namespace,
                    "pods",
                    pod,
                    _preload_content=False,
                    _request_timeout=REQUEST_TIMEOUT,
                )
        except ContainerGone:  # 404: no metrics-server, or no sample yet
            return None
        return _json(response)

    def logs(
        self, pod: str, container: str, tail: int, *, timestamps: bool = False
    ) -> str:
        """The container's last ``tail`` lines (its previous run's, if it restarted
        and the current one has said nothing yet); each after its RFC 3339 time
        with ``timestamps``."""
        with mapped_errors(f"read the logs of {pod}"):
            text = self._core.read_namespaced_pod_log(
                pod,
                self.namespace,
                container=container,
                tail_lines=tail,
                timestamps=timestamps,
                _request_timeout=REQUEST_TIMEOUT,
            )
        return str(text)

    def pod_get(self, pod: str, port: int, path: str) -> str:
        """GET ``path`` on a pod's port through the API server's proxy
        (``pods/proxy``): the text it answers."""
        with mapped_errors(f"read {path} of {pod}"):
            response = self._core.connect_get_namespaced_pod_proxy_with_path(
                f"{pod}:{port}",
                self.namespace,
                path.lstrip("/"),
                _preload_content=False,
                _request_timeout=REQUEST_TIMEOUT,
            )
        data: bytes = getattr(response, "data", b"")
        return data.decode(errors="replace")

    def exec_in(
        self,
        pod: str,
        container: str,
        command: Sequence[str],
        *,
        stdin: bytes | None = None,
        timeout: float,
    ) -> tuple[int, str]:
        """Run ``command`` in the container: its exit status and its output (stdout
        and stderr). ``stdin``, if given, is written and the command must stop reading
        on its own (the 1.20 exec protocol cannot close a stream)."""
        # A client of its own: ``stream`` swaps its client's request function for a
        # websocket's while it runs, which would break every other call sharing it.
        streaming = kubernetes.client.ApiClient(self._configuration)
        with mapped_errors(f"exec in {pod}"), contextlib.closing(streaming):
            client = kubernetes.stream.stream(
                kubernetes.client.CoreV1Api(streaming).connect_get_namespaced_pod_exec,
                pod,
                self.namespace,
                container=container,
                command=list(command),
                stdin=stdin is not None,
                stdout=True,
                stderr=True,
                tty=False,
                binary=True,
                _preload_content=False,
            )
            try:
                if stdin is not None:
                    client.write_stdin(stdin)
                client.run_forever(timeout=timeout)
                if client.is_open():
                    raise ContainerEngineError(
                        f"exec in {pod}: still running after {timeout:.0f} s"
                    )
                # The status first: read_all drops every channel's buffer.
                status = _exit_status(client.read_channel(ERROR_CHANNEL))
                output = client.read_all()
            finally:
                client.close()
        text = output.decode(errors="replace") if isinstance(output, bytes) else output
        return status, text

    def put_archive(
        self,
        pod: str,
        container: str,
        path: str,
        data: bytes,
        *,
        python: str,
        timeout: float,
    ) -> None:
        """Extract a tar archive into ``path`` in the container (on a volume: the
        root is read-only) with ``python``, the image's own (no image has tar for
        sure; every backend image has its Python)."""
        # The archive is the controller's own; the data filter (a Python with it)
        # still keeps every member under ``path``.
        script = (
            "import sys, tarfile; "
            "kw = {'filter': 'data'} if hasattr(tarfile, 'data_filter') else {}; "
            "tarfile.open(fileobj=sys.stdin.buffer, mode='r|')"
            f".extractall({path!r}, **kw)"
        )
        status, output = self.exec_in(
            pod, container, [python, "-c", script], stdin=data, timeout=timeout
        )
        if status != 0:
            raise ContainerEngineError(f"copy into {pod}:{path}: {output.strip()}")


def _json(response: Any) -> Manifest:
    loaded: Manifest = json.loads(response.data)
    return loaded


def _exit_status(error_channel: str | bytes) -> int:
    """The exit status the API server reports on the exec's error channel (a Status:
    Success, or Failure with the ``ExitCode`` cause)."""
    text = error_channel.decode() if isinstance(error_channel, bytes) else error_channel
    if not text:
        return 0
    status = json.loads(text)
    if status.get("status") == "Success":
        return 0
    for cause in status.get("details", {}).get("causes", []):
        if cause.get("reason") == "ExitCode":
            return int(cause.get("message", 1))
    raise ContainerEngineError(f"exec failed: {status.get('message', text)}")

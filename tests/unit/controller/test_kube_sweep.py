"""The Kubernetes engine's sweep: one listing of the pods for a look at many backends
(the supervisor's, a listing's), on the in-memory API (testing/kube.py). The real
cluster runs the supervisor in tests/cluster/test_kube_engine.py."""

import threading
from dataclasses import dataclass
from typing import Any

from beephost_controller.engine.kube_backends import KubeBackends
from beephost_controller.engine.sandbox_env import LABEL_BACKEND_ID, selector
from beephost_controller.kube_settings import KubernetesSettings
from beephost_controller.ports import ContainerEngineError
from beephost_controller.rows import BackendConfig, BackendRow
from beephost_controller.schemas import BackendLimits, BackendOptions
from beephost_controller.settings import Settings
from beephost_controller.testing import MemoryKubeApi

SETTINGS = Settings(name="ctl")


@dataclass
class CountingApi(MemoryKubeApi):
    """Counts the reads: a get per pod, or a list for all of them."""

    gets: int = 0
    lists: int = 0
    refuse_lists: bool = False

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        self.gets += 1
        return super().get(kind, name)

    def list(self, kind: str, labels: Any) -> list[dict[str, Any]]:
        self.lists += 1
        if self.refuse_lists:
            raise ContainerEngineError("list Pods: the API server is away")
        return super().list(kind, labels)


def _engine(api: CountingApi) -> KubeBackends:
    kube = KubernetesSettings(namespace="sandboxes", registry="r.example:5000")
    return KubeBackends(SETTINGS, kube, api, lambda tag: tag)  # type: ignore[arg-type]


def _backend(api: MemoryKubeApi, index: int, phase: str = "Running") -> BackendRow:
    backend_id = f"b-{index}"
    name = f"ctl-{backend_id}"
    labels = {**selector(SETTINGS), LABEL_BACKEND_ID: backend_id}
    api.objects[("Pod", name)] = {
        "kind": "Pod",
        "metadata": {"name": name, "uid": f"uid-{index}", "labels": labels},
        "status": {
            "phase": phase,
            "containerStatuses": [
                {"name": "backend", "ready": True, "state": {"running": {}}}
            ],
        },
    }
    config = BackendConfig(None, "127.0.0.1", BackendLimits(), BackendOptions())
    return BackendRow(backend_id, "e", "http", "starting", name, "t", config)


def test_a_sweep_reads_every_pod_with_one_list() -> None:
    api = CountingApi()
    engine = _engine(api)
    rows = [_backend(api, i) for i in range(20)]
    alone = [engine.state(row) for row in rows]
    assert (api.gets, api.lists) == (20, 0)
    with engine.sweep():
        swept = [engine.state(row) for row in rows]
    assert (api.gets, api.lists) == (20, 1)
    assert swept == alone
    assert {state.status for state in swept if state} == {"running"}


def test_a_pod_the_listing_lacks_is_read_on_its_own() -> None:
    api = CountingApi()
    engine = _engine(api)
    listed = _backend(api, 1)
    with engine.sweep():
        later = _backend(api, 2)  # made after the listing (a launch meanwhile)
        state = engine.state(later)
        assert state is not None
        assert state.name == later.container_name
        del api.objects[("Pod", listed.container_name)]
        assert engine.state(listed) is not None  # as listed at the sweep's start
    assert (api.gets, api.lists) == (1, 1)
    assert engine.state(listed) is None  # read now: gone
    assert engine.state(later) is not None


def test_a_sweep_is_its_own_thread_s() -> None:
    api = CountingApi()
    engine = _engine(api)
    row = _backend(api, 1)
    seen: list[bool] = []
    with engine.sweep():
        # Another thread (an API request) reads the pod as it is now.
        other = threading.Thread(target=lambda: seen.append(bool(engine.state(row))))
        other.start()
        other.join()
    assert seen == [True]
    assert (api.gets, api.lists) == (1, 1)


def test_a_failed_listing_falls_back_to_a_read_per_pod() -> None:
    api = CountingApi(refuse_lists=True)
    engine = _engine(api)
    rows = [_backend(api, i) for i in range(3)]
    with engine.sweep():
        assert all(engine.state(row) is not None for row in rows)
    assert (api.gets, api.lists) == (3, 1)

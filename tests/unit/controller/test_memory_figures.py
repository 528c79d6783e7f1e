"""A backend's memory in use from what each engine reports: Docker's stats (usage less
the inactive page cache, as ``docker stats`` shows it) and metrics-server's quantities."""

import pytest

from beephost_controller.engine.docker_containers import memory_in_use
from beephost_controller.engine.kube_backends import memory_quantity, pod_memory


def test_docker_memory_is_usage_less_inactive_cache() -> None:
    v2 = {"memory_stats": {"usage": 50_000_000, "stats": {"inactive_file": 8_000_000}}}
    assert memory_in_use(v2) == 42_000_000
    v1 = {"memory_stats": {"usage": 30_000_000, "stats": {"total_inactive_file": 1000}}}
    assert memory_in_use(v1) == 29_999_000
    assert memory_in_use({"memory_stats": {"usage": 7}}) == 7


@pytest.mark.parametrize(
    "stats",
    [{}, {"memory_stats": {}}, {"memory_stats": {"usage": None}}, {"read": "x"}],
)
def test_a_container_not_running_has_no_figure(stats: dict[str, object]) -> None:
    assert memory_in_use(stats) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12345Ki", 12345 * 1024),
        ("64Mi", 64 << 20),
        ("1Gi", 1 << 30),
        ("1000", 1000),
        ("2M", 2_000_000),
        ("1.5Ki", 1536),
        ("12x", None),
        ("", None),
        ("-1Mi", None),
    ],
)
def test_kubernetes_quantities(text: str, expected: int | None) -> None:
    assert memory_quantity(text) == expected


def test_a_pods_memory_is_its_containers_sum() -> None:
    metrics = {
        "containers": [
            {"name": "backend", "usage": {"cpu": "1m", "memory": "40Mi"}},
            {"name": "relay", "usage": {"memory": "2Mi"}},
        ]
    }
    assert pod_memory(metrics) == 42 << 20
    assert pod_memory({"containers": []}) is None
    assert pod_memory({"containers": [{"usage": {}}]}) is None
    assert pod_memory({"containers": [{"usage": {"memory": "lots"}}]}) is None

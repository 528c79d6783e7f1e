"""The controllers the cluster tests run, one way per kind: a process on the node
(``process``) or the chart's pod (``chart``), and what each built removed after it."""

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

import pytest

from tests.cluster.chart_controller import installed_chart
from tests.cluster.conftest import Cluster, remove_images
from tests.cluster.kube_controller import ClusterController, KubeController
from tests.ports import free_port


@contextmanager
def cluster_controller(
    request: pytest.FixtureRequest,
    cluster: Cluster,
    tmp_path_factory: pytest.TempPathFactory,
    run: dict[str, str],
    *,
    settings: Mapping[str, str] | None = None,
    chart_settings: Mapping[str, str] | None = None,
    trusted: bytes = b"",
    before_images_go: Callable[[], None] = lambda: None,
) -> Iterator[ClusterController]:
    """A controller of ``request.param``'s kind, labelling what it builds with
    ``run``.

    Args:
        settings: More settings of the process (without ``BEEPHOST_CONTROLLER_``).
        chart_settings: More settings of the chart's controller.
        trusted: More CA certificates in the chart's CA bundle.
        before_images_go: What must go before its images can (their containers).
    """
    owners: list[str] = []
    try:
        if request.param == "chart":
            request.getfixturevalue("product_images")
            with installed_chart(
                cluster,
                tmp_path_factory.mktemp("chart"),
                run,
                settings=chart_settings,
                trusted=trusted,
            ) as chart:
                owners.append(chart.name)
                yield chart
            return
        proc = KubeController(
            workdir=tmp_path_factory.mktemp("kube-controller"),
            port=free_port(),
            kubeconfig=cluster.kubeconfig,
            namespace=request.getfixturevalue("namespace"),
            registry=cluster.registry,
            labels=run,
            settings=dict(settings or {}),
        )
        owners.append(proc.name)
        try:
            proc.start()
            yield proc
        finally:
            proc.stop()
    finally:
        before_images_go()
        # What it built: its environments (the run's labels) and the base images
        # a process builds for itself (their owner's label: the controller's name).
        remove_images(run)
        for owner in owners:
            remove_images({"io.beephost.image.owner": owner})

"""In-memory implementations of the controller's ports, for tests and dry runs.

``FakeEngine`` (a ``ContainerEngine``, over ``FakeImages``), ``FakeRootfsBuilder`` and
``FakeWheelhouseTools`` (the image pipeline's tools), ``MemoryImageBuilder`` (an
``ImageBuilder``), ``MemoryBackends`` (a ``BackendEngine``), ``MemoryContainers``
(Docker's ``BackendContainers``), ``MemoryKubeApi`` (the Kubernetes engine's API calls)
and ``SetClock``. Every test that
needs a port without an engine uses these; none of them reads a Dockerfile or runs code.
"""

from beephost_controller.testing.backends import MemoryBackends
from beephost_controller.testing.engine import FakeEngine
from beephost_controller.testing.kube import Exec, MemoryKubeApi
from beephost_controller.testing.records import CommitRun, ImageBuild, RemoteImage
from beephost_controller.testing.services import (
    BUILD_STEPS,
    MemoryContainers,
    MemoryImageBuilder,
    SetClock,
)
from beephost_controller.testing.tools import (
    FAKE_PYTHON_MINORS,
    FakeRootfsBuilder,
    FakeWheelhouseTools,
    fake_wheel_bytes,
)

__all__ = [
    "BUILD_STEPS",
    "FAKE_PYTHON_MINORS",
    "CommitRun",
    "Exec",
    "FakeEngine",
    "FakeRootfsBuilder",
    "FakeWheelhouseTools",
    "ImageBuild",
    "MemoryBackends",
    "MemoryContainers",
    "MemoryImageBuilder",
    "MemoryKubeApi",
    "RemoteImage",
    "SetClock",
    "fake_wheel_bytes",
]

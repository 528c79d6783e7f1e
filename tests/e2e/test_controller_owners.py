"""Two controllers on one engine, with different names: each lists, prunes and
removes only the environment images it built (``io.beephost.image.owner``), and uses
the other's image of equal content without ever removing it.

Two real ``beephost-controller`` processes (tests/e2e/controller_process.py) build
into the session's test repositories with the same LABELS: only their names differ.
"""

import pytest

from tests.e2e.containers import docker, inspect
from tests.e2e.controller_process import (
    ControllerProcess,
    build_environment,
    module_controller,
)

pytestmark = pytest.mark.docker

#: On an image: the controller that built it.
OWNER_LABEL = "io.beephost.image.owner"
#: Content no other module builds: the session's controllers share the test
#: repositories, and an image of equal content built earlier would be another's.
REQUIREMENTS = ["six==1.16.0"]

first = module_controller("owners-first", name="first")
second = module_controller("owners-second", name="second")


def _exists(docker_cli: str, tag: str) -> bool:
    out = docker(docker_cli, "images", "-q", tag)
    return bool(out.strip())


def test_a_second_controller_never_removes_the_firsts_images(
    first: ControllerProcess, second: ControllerProcess, docker_cli: str
) -> None:
    with first.client() as one, second.client() as two:
        build_environment(one, "owned", REQUIREMENTS, timeout=600)
        image = one.environment("owned").image
        assert image is not None
        labels = inspect(docker_cli, image, "image")["Config"]["Labels"]
        assert labels[OWNER_LABEL] == first.name

        # Not the second's: not listed, not pruned.
        assert image not in [tag for i in two.images() for tag in i.tags]
        pruned = two.prune_images()
        assert image not in [tag for i in pruned for tag in i.tags]
        assert _exists(docker_cli, image)

        # The same content: the second finds the first's image and uses it...
        build_environment(two, "copy", REQUIREMENTS, timeout=600)
        assert two.environment("copy").image == image
        # Listed by the second while it uses it; its environment's deletion leaves
        # it to its owner.
        assert [i.environments for i in two.images() if image in i.tags] == [("copy",)]
        two.delete_environment("copy")
        pruned = two.prune_images()
        assert image not in [tag for i in pruned for tag in i.tags]
        assert _exists(docker_cli, image)
        assert one.environment("owned").status == "ready"
        assert [i.environments for i in one.images() if image in i.tags] == [("owned",)]
        one.delete_environment("owned")  # its owner's: removed with its last user
        assert not _exists(docker_cli, image)

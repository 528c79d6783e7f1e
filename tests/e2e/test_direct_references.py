"""Direct references the operator allows really build, or fail the job saying why.

A real ``beephost-controller`` process with ``BEEPHOST_CONTROLLER_REQUIREMENT_URL_SCHEMES``
allowing ``https``: the lock then holds ``six @ https://...whl --hash=...``, the wheel
is downloaded into the wheelhouse and installed offline in the image as a pinned,
hashed requirement. A source distribution cannot be built offline: its job fails
with a reason naming the requirement.
"""

import pytest

from beephost_client.controller import ControllerClient
from tests.e2e.controller_process import module_controller, stopped_after

pytestmark = pytest.mark.docker

FILES = "https://files.pythonhosted.org/packages"
SIX_WHEEL = (
    f"{FILES}/b7/ce/149a00dd41f10bc29e5921b496af8b574d8413afcd5e30dfa0ed46c2cc5e/"
    "six-1.17.0-py2.py3-none-any.whl"
)
SIX_SDIST = (
    f"{FILES}/94/e7/b2c673351809dca68a0e064b6af791aa332cf192da575fd474ed7d6f16a2/"
    "six-1.17.0.tar.gz"
)


# The e2e controller with https direct references allowed: the conftest's ``api`` is a
# client of it.
controller = module_controller(
    "direct-controller", {"REQUIREMENT_URL_SCHEMES": '["https"]'}
)


def test_an_allowed_wheel_url_is_installed(api: ControllerClient) -> None:
    env = api.create_environment("direct-wheel", requirements=[f"six @ {SIX_WHEEL}"])
    assert env.job_id is not None
    job = api.wait_job(env.job_id, timeout=600)
    assert job.succeeded, job.error
    assert api.environment("direct-wheel").status == "ready"
    started = api.start_backend("direct-wheel", "pipe")
    with stopped_after(api, started):
        api.wait_backend(started.id, timeout=60)
        with api.connect_backend(started.id) as client:
            assert client.evaluate("__import__('six').__version__") == "1.17.0"
            # The installed distribution is the wheel at that URL, not an index's.
            assert client.evaluate(
                "__import__('importlib.metadata').metadata.version('six')"
            ) == ("1.17.0")


def test_a_source_distribution_url_fails_the_job_naming_it(
    api: ControllerClient,
) -> None:
    env = api.create_environment("direct-sdist", requirements=[f"six @ {SIX_SDIST}"])
    assert env.job_id is not None
    job = api.wait_job(env.job_id, timeout=600)
    assert not job.succeeded
    assert job.error is not None
    assert f"six @ {SIX_SDIST}" in job.error, job.error
    assert "wheel" in job.error, job.error
    assert api.environment("direct-sdist").status == "failed"

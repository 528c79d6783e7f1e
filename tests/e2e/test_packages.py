"""Installing packages into running, offline backends the controller runs.

The controller resolves with the environment's lock, downloads the wheels and copies
them in; a session that was open before the install imports the package after it.
A conflict with the lock fails with the resolver's words and changes nothing, and the
backend never gets network. This module's controller names an index and a CA bundle
(PyPI's, and the host's bundle: on these machines PyPI is reached through a
TLS-intercepting proxy only that bundle trusts), as one behind a proxy would: its
installs use them, and a backend with network gets them for user code's own installs.
"""

import os
from collections.abc import Iterator
from pathlib import Path

import certifi
import pytest

from beephost_client.controller import Backend, ControllerClient, InstalledPackage
from beephost_protocol.errors import InvalidRequest, NotFound
from tests.e2e.controller_process import (
    ON_BOTH,
    build_environment,
    module_controller,
    stopped_after,
)

pytestmark = pytest.mark.docker

KINDS = ["pipe", "http", "rpc"]
INDEX = "https://pypi.org/simple"
#: The host's CA bundle (the system's, which trusts a proxy), else certifi's roots.
CA_BUNDLE = next(
    (
        path
        for path in (
            os.environ.get("SSL_CERT_FILE"),
            "/etc/ssl/certs/ca-certificates.crt",
        )
        if path and Path(path).is_file()
    ),
    certifi.where(),
)


#: A controller with an index URL and a CA bundle of its own.
controller = module_controller("indexed", {"INDEX_URL": INDEX, "CA_BUNDLE": CA_BUNDLE})


@pytest.fixture(scope="module")
def environment(api: ControllerClient) -> str:
    return build_environment(api, "packages", ["six==1.17.0"], timeout=600)


@pytest.fixture(params=KINDS)
def backend(
    request: pytest.FixtureRequest, api: ControllerClient, environment: str
) -> Iterator[Backend]:
    started = api.start_backend(environment, request.param)
    yield api.wait_backend(started.id, timeout=90)
    api.stop_backend(started.id)


def log_of(api: ControllerClient, job_id: str) -> list[str]:
    return [line.line for line in api.job_log(job_id).lines]


@ON_BOTH
def test_an_install_reaches_a_session_opened_before_it(
    api: ControllerClient, backend: Backend
) -> None:
    with api.connect_backend(backend.id) as client, client.session() as session:
        session.execute(
            "try:\n    import tabulate\nexcept ImportError:\n    before = 'missing'"
        )
        assert session.evaluate("before") == "missing"
        job = api.wait_job(api.install(backend.id, ["tabulate==0.9.0"]).id, timeout=300)
        assert job.succeeded, job.error
        assert (job.kind, job.target) == ("install", backend.id)
        assert session.evaluate("__import__('tabulate').__version__") == "0.9.0"
        table = client.evaluate("__import__('tabulate').tabulate([[1, 2]])")
        assert "1" in table
        # Still offline: an install gives the backend no way out (pypi.org's
        # address, no DNS needed).
        session.execute(
            "import socket\ntry:\n"
            "    socket.create_connection(('151.101.0.223', 443), timeout=3).close()\n"
            "    reached = True\nexcept OSError:\n    reached = False"
        )
        assert session.evaluate("reached") is False
    assert api.installed_packages(backend.id) == [InstalledPackage("tabulate", "0.9.0")]


def test_a_conflict_with_the_lock_changes_nothing(
    api: ControllerClient, environment: str
) -> None:
    backend = api.wait_backend(api.start_backend(environment, "http").id, timeout=90)
    with stopped_after(api, backend):
        refused = api.wait_job(api.install(backend.id, ["six==1.16.0"]).id, timeout=300)
        assert not refused.succeeded
        assert refused.error is not None
        assert "resolution failed" in refused.error
        assert "six" in refused.error
        assert api.installed_packages(backend.id) == []
        with api.connect_backend(backend.id) as client:
            assert client.evaluate("__import__('six').__version__") == "1.17.0"

        satisfied = api.wait_job(api.install(backend.id, ["six"]).id, timeout=300)
        assert satisfied.succeeded, satisfied.error
        assert "already satisfied: nothing to install" in log_of(api, satisfied.id)

        with pytest.raises(InvalidRequest, match="never expanded"):
            api.install(backend.id, ["${BEEPHOST_CONTROLLER_TOKEN}"])
    with pytest.raises(NotFound):
        api.install(backend.id, ["tabulate"])


def test_a_backend_with_network_gets_the_index_and_the_ca_bundle(
    api: ControllerClient, environment: str
) -> None:
    options = {"network": True}
    backend = api.wait_backend(
        api.start_backend(environment, "pipe", options=options).id, timeout=90
    )
    with stopped_after(api, backend), api.connect_backend(backend.id) as client:
        client.execute("import os, ssl, urllib.request")
        env = client.evaluate(
            "{k: os.environ.get(k) for k in ('PIP_INDEX_URL', 'UV_DEFAULT_INDEX', "
            "'SSL_CERT_FILE', 'REQUESTS_CA_BUNDLE', 'PIP_CERT')}"
        )
        assert env == {
            "PIP_INDEX_URL": INDEX,
            "UV_DEFAULT_INDEX": INDEX,
            "SSL_CERT_FILE": "/packages/ca-bundle.pem",
            "REQUESTS_CA_BUNDLE": "/packages/ca-bundle.pem",
            "PIP_CERT": "/packages/ca-bundle.pem",
        }
        bundle = client.evaluate("open(os.environ['SSL_CERT_FILE']).read()")
        assert bundle == Path(CA_BUNDLE).read_text()
        # What pip would do: the index over TLS, verified with that bundle.
        status = client.evaluate(
            "urllib.request.urlopen(os.environ['PIP_INDEX_URL'] + '/tabulate/', "
            "timeout=20).status"
        )
        assert status == 200


@ON_BOTH
def test_a_second_install_adds_to_the_first(
    api: ControllerClient, backend: Backend
) -> None:
    first = api.wait_job(api.install(backend.id, ["tabulate==0.9.0"]).id, timeout=300)
    assert first.succeeded, first.error
    second = api.wait_job(api.install(backend.id, ["idna==3.10"]).id, timeout=300)
    assert second.succeeded, second.error
    assert api.installed_packages(backend.id) == [
        InstalledPackage("idna", "3.10"),
        InstalledPackage("tabulate", "0.9.0"),
    ]
    with api.connect_backend(backend.id) as client:
        versions = client.evaluate(
            "(__import__('tabulate').__version__, __import__('idna').__version__)"
        )
        assert list(versions) == ["0.9.0", "3.10"]
    again = api.wait_job(api.install(backend.id, ["tabulate"]).id, timeout=300)
    assert again.succeeded, again.error
    assert "already satisfied: nothing to install" in log_of(api, again.id)


@ON_BOTH
def test_concurrent_installs_into_one_backend_all_succeed(
    api: ControllerClient, backend: Backend
) -> None:
    pins = {"tabulate": "0.9.0", "idna": "3.10", "iniconfig": "2.1.0"}
    jobs = [api.install(backend.id, [f"{n}=={v}"]) for n, v in pins.items()]
    for job in jobs:
        done = api.wait_job(job.id, timeout=600)
        assert done.succeeded, done.error
    installed = {
        (p.name.lower(), p.version) for p in api.installed_packages(backend.id)
    }
    assert installed == set(pins.items())
    with api.connect_backend(backend.id) as client:
        assert client.evaluate("__import__('iniconfig').__name__") == "iniconfig"

"""ControllerClient over real HTTP against a live controller (no mocks below the SDK)."""

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import beephost_client as bc
from beephost_client.controller import AsyncControllerClient, ControllerClient, LogLine
from beephost_controller.testing import MemoryImageBuilder
from tests.integration.cli.support import (
    TOKEN,
    LiveController,
    live_controller,
)
from tests.ports import free_port


@pytest.fixture
def client(controller: LiveController) -> Iterator[ControllerClient]:
    with ControllerClient(controller.url, token=TOKEN, timeout=10) as client:
        yield client


def test_health_ready_and_metrics(client: ControllerClient) -> None:
    assert client.health() == {"status": "ok"}
    assert client.ready() == {"status": "ready"}
    assert "beephost_controller_api_requests_total" in client.metrics()


def test_environment_round_trip_and_the_build_stream(client: ControllerClient) -> None:
    env = client.create_environment(
        "data", requirements=["six", "attrs"], python="3.13"
    )
    # The reply does not wait for the build: it may already have started.
    assert env.status in ("pending", "building", "ready")
    assert (env.requirements, env.python) == (("attrs", "six"), "3.13")
    assert env.job_id is not None
    lines: list[LogLine] = []
    job = client.wait_job(env.job_id, on_log=lines.append)
    assert job.succeeded
    assert job.kind == "build"
    texts = [line.line for line in lines]
    assert texts[0] == "importing rootfs for CPython 3.13"
    assert texts[-1] == "environment data ready"
    assert [line.seq for line in lines] == sorted({line.seq for line in lines})
    page = client.job_log(env.job_id, limit=2)
    assert [line.line for line in page.lines] == texts[:2]
    rest = client.job_log(env.job_id, after=page.next)
    assert [line.line for line in rest.lines] == texts[2:]
    assert client.environment("data").status == "ready"
    assert (
        client.ensure_environment(
            "data", requirements=["attrs", "six"], python="3.13"
        ).created_at
        == env.created_at
    )
    # DELETE answers 204 without a body: the kept-alive connection serves the next call.
    client.delete_environment("data")
    assert client.environments() == []
    assert [j.id for j in client.jobs()] == [env.job_id]


def test_errors_are_the_taxonomy(
    client: ControllerClient, controller: LiveController
) -> None:
    client.create_environment("e")
    with pytest.raises(bc.Conflict, match="environment 'e' exists") as conflict:
        client.create_environment("e")
    assert conflict.value.data == {"environment": "e"}
    assert isinstance(conflict.value.__cause__, bc.ErrorReply)
    assert conflict.value.__cause__.status == 409
    assert conflict.value.__cause__.payload["code"] == "conflict"
    assert conflict.value.wire_code == "conflict"
    with pytest.raises(bc.Conflict, match="another definition"):
        client.ensure_environment("e", network=True)
    with pytest.raises(bc.NotFound, match="no environment 'x'"):
        client.environment("x")
    with pytest.raises(bc.NotFound):
        client.wait_job("job-missing")
    with pytest.raises(
        bc.InvalidRequest, match="not a valid name: a name is 1 to 63 characters"
    ):
        client.create_environment("Not Valid")
    with pytest.raises(bc.InvalidRequest, match=r"no runtime '2\.7'"):
        client.init_runtime("2.7")
    with ControllerClient(controller.url, token="wrong") as stranger:
        with pytest.raises(bc.Unauthorized):
            stranger.environments()
        assert stranger.health() == {"status": "ok"}  # probes need no token


def test_a_failed_job_is_returned_not_raised(tmp_path: Path) -> None:
    with (
        live_controller(
            tmp_path, MemoryImageBuilder(fail="no space left")
        ) as controller,
        ControllerClient(controller.url, token=TOKEN) as client,
    ):
        env = client.create_environment("x", requirements=["six"])
        assert env.job_id is not None
        job = client.wait_job(env.job_id)
        assert (job.status, job.error, job.finished) == (
            "failed",
            "no space left",
            True,
        )


def test_wait_job_gives_up_at_its_timeout(tmp_path: Path) -> None:
    with (
        live_controller(tmp_path, MemoryImageBuilder(step_seconds=2.0)) as controller,
        ControllerClient(controller.url, token=TOKEN) as client,
    ):
        env = client.create_environment("slow")
        assert env.job_id is not None
        started = time.monotonic()
        with pytest.raises(bc.ExecutionTimeout, match=r"did not finish within 0\.5s"):
            client.wait_job(env.job_id, timeout=0.5)
        assert time.monotonic() - started < 2.0
        assert not client.job(env.job_id).finished


def test_runtime_init_job(client: ControllerClient) -> None:
    job = client.init_runtime()
    assert (job.kind, job.target) == ("init", "3.11")
    assert client.wait_job(job.id).succeeded
    [first, second] = client.runtimes()
    assert (first.python, first.initialised, first.version) == ("3.11", True, "3.11.0")
    assert (second.python, second.initialised) == ("3.13", False)


def test_connection_refused_is_connect_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with ControllerClient(url) as client, pytest.raises(bc.ConnectError, match=url):
        client.environments()


@pytest.mark.anyio
async def test_the_async_client_over_http(controller: LiveController) -> None:
    async with AsyncControllerClient(controller.url, token=TOKEN, timeout=10) as client:
        assert await client.health() == {"status": "ok"}
        env = await client.create_environment("data", requirements=["six"])
        assert env.job_id is not None
        lines: list[str] = []
        job = await client.wait_job(
            env.job_id, on_log=lambda line: lines.append(line.line)
        )
        assert job.succeeded, job.error
        assert lines[-1] == "environment data ready"  # the log stream, chunked
        assert (await client.environment("data")).status == "ready"
        # 204 without a body: the pooled keep-alive connection serves the next call.
        await client.delete_environment("data")
        assert await client.environments() == []
        assert "beephost_controller_api_requests_total" in await client.metrics()
        with pytest.raises(bc.NotFound, match="no environment 'x'"):
            await client.environment("x")
    url = f"http://127.0.0.1:{free_port()}"
    async with AsyncControllerClient(url) as client:
        with pytest.raises(bc.ConnectError, match=url):
            await client.environments()


API_DOC = Path(__file__).parents[3] / "docs" / "users" / "api.md"


def test_the_async_example_of_the_api_docs_runs(controller: LiveController) -> None:
    # tests/e2e/test_doc_examples.py runs it against a compose system; here, faster,
    # against the in-process controller (the example reads the two variables).
    text = API_DOC.read_text()
    start = text.index("```python\nimport asyncio\n") + len("```python\n")
    example = text[start : text.index("```", start)]
    assert "AsyncControllerClient()" in example
    env = {
        **os.environ,
        "BEEPHOST_CONTROLLER_URL": controller.url,
        "BEEPHOST_CONTROLLER_TOKEN": TOKEN,
    }
    done = subprocess.run(
        [sys.executable, "-c", example],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "{'status': 'ok'}\n"

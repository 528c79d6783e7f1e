"""The controller's REST API on a real uvicorn server, real SQLite and a real uv resolver.

Images come from an in-memory builder here; the Docker-backed path is tested in e2e.
"""

import contextlib
import http.client
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from beephost_controller.app import create_app
from beephost_controller.resolver import Lock, resolve
from beephost_controller.rows import BackendConfig, BackendRow
from beephost_controller.schemas import BackendLimits, BackendOptions
from beephost_controller.settings import Settings
from beephost_controller.store import SqliteStore
from beephost_controller.testing import MemoryContainers, MemoryImageBuilder
from tests.integration.serving import port_of, served


class Api:
    def __init__(self, port: int, token: str | None) -> None:
        self.port = port
        self.token = token

    def call(
        self, method: str, path: str, body: Any = None, token: str | None = ""
    ) -> tuple[int, Any]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = {"Content-Type": "application/json"}
        bearer = self.token if token == "" else token
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        try:
            connection.request(
                method, path, json.dumps(body) if body is not None else None, headers
            )
            response = connection.getresponse()
            raw = response.read()
        finally:
            connection.close()
        return response.status, json.loads(raw) if raw else None

    def wait_job(self, job_id: str, timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, job = self.call("GET", f"/api/v1/jobs/{job_id}")
            assert status == 200
            if job["status"] in ("succeeded", "failed"):
                return dict(job)
            time.sleep(0.05)
        raise AssertionError(f"job {job_id} did not finish")


def fake_resolver(requirements: list[str], python: str) -> Lock:
    return Lock(
        "".join(
            f"{r}==1.0 \\\n    --hash=sha256:{'0' * 64}\n" for r in sorted(requirements)
        )
    )


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Api]]:
    servers = contextlib.ExitStack()

    def start(
        builder: MemoryImageBuilder | None = None,
        token: str | None = "t0ken",
        resolver: Any = fake_resolver,
    ) -> Api:
        settings = Settings(
            database=tmp_path / "controller.db",
            token=SecretStr(token) if token else None,
        )
        app = create_app(
            settings,
            builder=builder or MemoryImageBuilder(),
            resolver=resolver,
            containers=MemoryContainers(),  # never the real engine's "default" controller
        )
        server = servers.enter_context(served(app, host="127.0.0.1", port=0))
        return Api(port_of(server), token)

    with servers:
        yield start


def test_environment_lifecycle_and_content_addressed_images(
    serve: Callable[..., Api],
) -> None:
    builder = MemoryImageBuilder()
    api = serve(builder)
    status, env = api.call(
        "POST",
        "/api/v1/environments",
        {"name": "one", "requirements": ["six", "attrs"]},
    )
    assert status == 201
    # The reply does not wait for the build: it may already have started (or ended).
    assert env["status"] in ("pending", "building", "ready")
    assert env["job_id"]
    assert env["requirements"] == ["attrs", "six"]  # normalised
    job = api.wait_job(env["job_id"])
    assert job["status"] == "succeeded"
    status, ready = api.call("GET", "/api/v1/environments/one")
    assert ready["status"] == "ready"
    assert ready["image"].startswith("beephost/env:")
    # An equal environment shares the image: no second build.
    status, two = api.call(
        "POST",
        "/api/v1/environments",
        {"name": "two", "requirements_txt": "six\n# c\nattrs\n"},
    )
    assert status == 201
    api.wait_job(two["job_id"])
    assert api.call("GET", "/api/v1/environments/two")[1]["image"] == ready["image"]
    assert len(builder.builds) == 1
    _, page = api.call("GET", f"/api/v1/jobs/{two['job_id']}/log")
    logged = [line["line"] for line in page["lines"]]
    assert any("reusing its lock" in line for line in logged)
    assert any("nothing to build" in line for line in logged)
    assert [e["name"] for e in api.call("GET", "/api/v1/environments")[1]] == [
        "one",
        "two",
    ]
    assert api.call("DELETE", "/api/v1/environments/two")[0] == 204
    assert api.call("GET", "/api/v1/environments/two")[0] == 404


def test_images_are_removed_when_no_environment_uses_them(
    serve: Callable[..., Api],
) -> None:
    builder = MemoryImageBuilder()
    api = serve(builder)

    def create(name: str, requirements: list[str]) -> str:
        status, env = api.call(
            "POST", "/api/v1/environments", {"name": name, "requirements": requirements}
        )
        assert status == 201
        assert api.wait_job(env["job_id"])["status"] == "succeeded"
        image: str = api.call("GET", f"/api/v1/environments/{name}")[1]["image"]
        return image

    shared = create("a", ["six"])
    assert create("b", ["six"]) == shared
    own = create("c", ["attrs"])
    assert api.call("GET", "/api/v1/images", token=None)[0] == 401
    assert api.call("POST", "/api/v1/images/prune", token=None)[0] == 401
    status, listed = api.call("GET", "/api/v1/images")
    assert status == 200
    assert {tuple(i["tags"]): i["environments"] for i in listed["images"]} == {
        (shared,): ["a", "b"],
        (own,): ["c"],
    }
    assert listed["total_bytes"] == 2 * builder.image_size
    assert listed["unused_bytes"] == 0
    # Deleting one of two users keeps the image; deleting the last removes it.
    assert api.call("DELETE", "/api/v1/environments/a")[0] == 204
    assert shared in builder.images
    assert api.call("DELETE", "/api/v1/environments/b")[0] == 204
    assert shared not in builder.images
    # An image a container holds stays at the delete, and prune takes it later.
    builder.in_use.add(own)
    assert api.call("DELETE", "/api/v1/environments/c")[0] == 204
    assert own in builder.images
    assert api.call("GET", "/api/v1/images")[1]["unused_bytes"] == builder.image_size
    assert api.call("POST", "/api/v1/images/prune")[1] == {
        "removed": [],
        "freed_bytes": 0,
    }
    builder.in_use.clear()
    status, pruned = api.call("POST", "/api/v1/images/prune")
    assert status == 200
    assert [i["tags"] for i in pruned["removed"]] == [[own]]
    assert pruned["freed_bytes"] == builder.image_size
    assert api.call("GET", "/api/v1/images")[1]["images"] == []


def test_create_conflicts_and_ensure_is_idempotent(serve: Callable[..., Api]) -> None:
    api = serve()
    spec = {"name": "e", "requirements": ["six"], "network": False}
    status, first = api.call("PUT", "/api/v1/environments/e", spec)
    assert status == 201
    status, again = api.call("PUT", "/api/v1/environments/e", spec)
    assert status == 200
    assert again["created_at"] == first["created_at"]
    status, error = api.call("POST", "/api/v1/environments", spec)
    assert status == 409
    assert error["error"] == {
        "code": "conflict",
        "message": "environment 'e' exists",
        "data": {"environment": "e"},
    }
    status, error = api.call("PUT", "/api/v1/environments/e", {**spec, "network": True})
    assert status == 409
    assert error["error"]["code"] == "conflict"
    assert "another definition" in error["error"]["message"]


def test_deleting_an_environment_with_backends_conflicts(
    serve: Callable[..., Api], tmp_path: Path
) -> None:
    api = serve()
    env = api.call("POST", "/api/v1/environments", {"name": "e"})[1]
    assert api.wait_job(env["job_id"])["status"] == "succeeded"
    store = SqliteStore(tmp_path / "controller.db")  # the server's database
    try:
        store.insert_backend(
            BackendRow(
                id="b-1",
                environment="e",
                type="http",
                status="ready",
                container_name="beephost-b-1",
                token="t",
                config=BackendConfig(
                    None, "127.0.0.1", BackendLimits(), BackendOptions()
                ),
            )
        )
        status, error = api.call("DELETE", "/api/v1/environments/e")
        assert status == 409
        assert error["error"] == {
            "code": "conflict",
            "message": "environment 'e' has backends; stop them first",
            "data": {"environment": "e"},
        }
        assert api.call("GET", "/api/v1/environments/e")[0] == 200
        store.delete_backend("b-1")
    finally:
        store.close()
    assert api.call("DELETE", "/api/v1/environments/e")[0] == 204


def test_failed_build_reports_the_error_and_ensure_retries(
    serve: Callable[..., Api],
) -> None:
    builder = MemoryImageBuilder(fail="pip exploded")
    api = serve(builder)
    env = api.call(
        "POST", "/api/v1/environments", {"name": "bad", "requirements": ["six"]}
    )[1]
    job = api.wait_job(env["job_id"])
    assert job["status"] == "failed"
    assert job["error"] == "pip exploded"
    failed = api.call("GET", "/api/v1/environments/bad")[1]
    assert (failed["status"], failed["error"]) == ("failed", "pip exploded")
    builder.fail = None
    retried = api.call(
        "PUT", "/api/v1/environments/bad", {"name": "bad", "requirements": ["six"]}
    )[1]
    assert api.wait_job(retried["job_id"])["status"] == "succeeded"


def test_real_resolution_errors_carry_uv_text(serve: Callable[..., Api]) -> None:
    def uv(requirements: list[str], python: str) -> Lock:
        return resolve(requirements, python)

    api = serve(resolver=uv)
    env = api.call(
        "POST",
        "/api/v1/environments",
        {
            "name": "x",
            "python": "3.13",
            "requirements": ["beephost-no-such-package-zz"],
        },
    )[1]
    job = api.wait_job(env["job_id"])
    assert job["status"] == "failed"
    assert "beephost-no-such-package-zz" in job["error"]
    assert "not found in the package registry" in job["error"]
    ok = api.call(
        "POST",
        "/api/v1/environments",
        {"name": "y", "python": "3.13", "requirements": ["six==1.17.0"]},
    )[1]
    assert api.wait_job(ok["job_id"])["status"] == "succeeded"


def test_bad_input_is_invalid_request(serve: Callable[..., Api]) -> None:
    api = serve()
    for body in (
        {"name": "Bad Name"},
        {"name": "ok", "python": "2.7"},
        {"name": "ok", "requirements": ["-r other.txt"]},
        {"name": "ok", "requirements_txt": "--index-url http://evil\nsix"},
        {"name": "ok", "unknown": 1},
    ):
        status, error = api.call("POST", "/api/v1/environments", body)
        assert status == 400, body
        assert error["error"]["code"] == "invalid_request"


def test_ten_thousand_requirements_are_refused_before_the_resolver(
    serve: Callable[..., Api],
) -> None:
    resolved: list[int] = []

    def counting(requirements: list[str], python: str) -> Lock:
        resolved.append(len(requirements))
        return fake_resolver(requirements, python)

    api = serve(resolver=counting)
    text = "".join(f"package-{n}\n" for n in range(10_000))
    status, error = api.call(
        "POST", "/api/v1/environments", {"name": "huge", "requirements_txt": text}
    )
    assert status == 400
    assert error["error"]["code"] == "invalid_request"
    assert error["error"]["message"].startswith(
        "10000 requirements: at most 1000 are resolved at once"
    )
    assert "BEEPHOST_CONTROLLER_MAX_REQUIREMENTS" in error["error"]["message"]
    assert error["error"]["data"] == {"requirements": 10_000, "limit": 1000}
    # Nothing was created, and the server goes on serving.
    assert api.call("GET", "/api/v1/environments/huge")[0] == 404
    as_list = [f"package-{n}" for n in range(1001)]
    status, error = api.call(
        "POST", "/api/v1/environments", {"name": "huge", "requirements": as_list}
    )
    assert (status, error["error"]["code"]) == (400, "invalid_request")
    status, env = api.call(
        "POST",
        "/api/v1/environments",
        {"name": "fine", "requirements": as_list[:1000]},
    )
    assert status == 201
    assert api.wait_job(env["job_id"])["status"] == "succeeded"
    assert resolved == [1000]


def test_auth(serve: Callable[..., Api]) -> None:
    api = serve()
    assert api.call("GET", "/api/v1/environments", token=None)[0] == 401
    assert api.call("GET", "/api/v1/environments", token="t0keN")[0] == 401
    assert api.call("GET", "/api/v1/environments", token="t0ken ")[0] == 401
    assert api.call("GET", "/api/v1/environments")[0] == 200
    assert api.call("GET", "/health", token=None)[0] == 200
    assert api.call("GET", "/ready", token=None)[0] == 200


def test_the_openapi_document_says_what_the_api_does(
    serve: Callable[..., Api],
) -> None:
    api = serve()
    status, document = api.call("GET", "/openapi.json", token=None)
    assert status == 200
    assert document["components"]["securitySchemes"]["HTTPBearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "The controller's token, or an admin backend's scoped one.",
    }
    assert "HTTPValidationError" not in document["components"]["schemas"]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            where = f"{method.upper()} {path}"
            assert "422" not in operation["responses"], where  # bad input is a 400
            open_path = path in ("/health", "/ready", "/metrics")
            assert ("security" in operation) is not open_path, where
            if not open_path:
                assert operation["responses"]["400"], where
                assert operation["responses"]["401"], where
    # What it documents is what a bad body gets.
    status, error = api.call("POST", "/api/v1/environments", {"name": 1})
    assert (status, error["error"]["code"]) == (400, "invalid_request")


def test_runtimes_and_metrics(serve: Callable[..., Api]) -> None:
    api = serve()
    runtimes = api.call("GET", "/api/v1/runtimes")[1]
    assert [r["python"] for r in runtimes] == ["3.11", "3.13", "3.14"]
    assert not any(r["initialised"] for r in runtimes)
    job = api.call("POST", "/api/v1/runtimes/init", {"python": "3.13"})[1]
    assert api.wait_job(job["id"])["status"] == "succeeded"
    runtimes = {r["python"]: r for r in api.call("GET", "/api/v1/runtimes")[1]}
    assert runtimes["3.13"]["version"] == "3.13.0"
    connection = http.client.HTTPConnection("127.0.0.1", api.port, timeout=10)
    connection.request("GET", "/metrics")
    text = connection.getresponse().read().decode()
    connection.close()
    assert 'beephost_controller_jobs_total{kind="init",outcome="succeeded"} 1.0' in text
    assert (
        'beephost_controller_api_requests_total{method="GET",route="/api/v1/runtimes",status="200"}'
        in text
    )


def test_state_survives_restart_and_unfinished_builds_resume(
    serve: Callable[..., Api], tmp_path: Path
) -> None:
    api = serve(MemoryImageBuilder(step_seconds=10))
    env = api.call(
        "POST", "/api/v1/environments", {"name": "slow", "requirements": ["six"]}
    )[1]
    time.sleep(0.3)
    # Simulate a crash mid-build: the row says running; a new process must resume it.
    store = SqliteStore(tmp_path / "controller.db")
    crashed = store.job(env["job_id"])
    assert crashed is not None
    assert crashed.status == "running"
    store.close()
    fresh = serve(
        MemoryImageBuilder()
    )  # a second controller process on the same database
    job = fresh.wait_job(env["job_id"])
    assert job["status"] == "succeeded"
    _status, page = fresh.call("GET", f"/api/v1/jobs/{env['job_id']}/log")
    assert any("resuming" in line["line"] for line in page["lines"])
    assert fresh.call("GET", "/api/v1/environments/slow")[1]["status"] == "ready"

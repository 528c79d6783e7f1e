"""ControllerClient without I/O: requests, decoding, error mapping, waits (MockControllerTransport)."""

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import beephost_client as bc
import beephost_protocol
from beephost_client import controller as ctl
from beephost_client._controller import backend_reached, stream_item
from beephost_client.controller import (
    Backend,
    ControllerClient,
    Job,
    Limits,
    LogLine,
    MockControllerTransport,
    Request,
    Response,
)
from tests.unit.client.support import surface_change

JOB = {
    "id": "job-1",
    "kind": "build",
    "target": "data",
    "status": "running",
    "error": None,
    "created_at": 1.0,
    "started_at": 2.0,
    "finished_at": None,
}
ENV = {
    "name": "data",
    "python": "3.13",
    "requirements": ["attrs", "six"],
    "network": False,
    "admin": False,
    "status": "pending",
    "image": None,
    "error": None,
    "job_id": "job-1",
    "created_at": 1.0,
    "updated_at": 1.0,
}
BACKEND = {
    "id": "b-1",
    "environment": "data",
    "type": "http",
    "status": "starting",
    "reason": None,
    "endpoint": "http://127.0.0.1:5001",
    "token": "tok",
    "container_id": "c0ffee",
    "created_at": 1.0,
    "ready_at": None,
    "restarts": 0,
    "limits": {"memory_mb": 512, "cpus": 1.0, "pids": 128},
}


def reply(status: int, value: Any = None, content: Any = None) -> Response:
    if content is None:
        content = b"" if value is None else json.dumps(value).encode()
    return Response(status, {"content-type": "application/json"}, content)


def error(status: int, code: str, message: str, **data: Any) -> Response:
    body = {"error": {"code": code, "message": message, "data": data}}
    return reply(status, body)


class Recorder:
    """A handler that answers from a queue of responses and records the requests."""

    def __init__(self, *responses: Response | Callable[[Request], Response]) -> None:
        self.responses = list(responses)
        self.requests: list[Request] = []

    def __call__(self, request: Request) -> Response:
        self.requests.append(request)
        answer = self.responses.pop(0)
        return answer(request) if callable(answer) else answer


def client_of(
    *responses: Response | Callable[[Request], Response],
) -> tuple[ControllerClient, Recorder]:
    recorder = Recorder(*responses)
    return ControllerClient(transport=MockControllerTransport(recorder)), recorder


def test_module_surface_is_pinned() -> None:
    change = surface_change(ctl)
    assert not change, change
    for name in ctl.__all__:
        assert getattr(ctl, name) is not None
    assert bc.ControllerClient is ctl.ControllerClient
    assert bc.AsyncControllerClient is ctl.AsyncControllerClient
    assert ctl.MockControllerTransport is bc.MockTransport  # one test transport
    assert bc.Conflict is ctl.Conflict is beephost_protocol.Conflict
    assert issubclass(bc.Conflict, bc.InvalidRequest)


def test_public_methods_are_documented() -> None:
    for name in dir(ControllerClient):
        if name.startswith("_"):
            continue
        doc = getattr(ControllerClient, name).__doc__ or ""
        assert doc, name
        if callable(getattr(ControllerClient, name)) and name not in (
            "close",
            "url",
            "timeout",
        ):
            assert "Example::" in doc, name


def test_create_environment_request_and_decoding() -> None:
    client, recorder = client_of(reply(201, {**ENV, "added_later": 1}))
    env = client.create_environment("data", requirements=["six", "attrs"])
    request = recorder.requests[0]
    assert (request.method, request.path) == ("POST", "/api/v1/environments")
    assert request.json() == {
        "name": "data",
        "requirements": ["six", "attrs"],
        "network": False,
    }
    assert env.requirements == ("attrs", "six")
    assert (env.name, env.status, env.job_id) == ("data", "pending", "job-1")


def test_ensure_environment_puts_to_the_name_quoted() -> None:
    client, recorder = client_of(reply(200, ENV))
    client.ensure_environment("a b/c", python="3.11", requirements_txt="six\n")
    request = recorder.requests[0]
    assert (request.method, request.path) == ("PUT", "/api/v1/environments/a%20b%2Fc")
    assert request.json()["requirements_txt"] == "six\n"
    assert request.json()["python"] == "3.11"


def test_images_and_prune_decode_into_images() -> None:
    image = {"id": "sha256:1", "tags": ["env:a"], "size": 5, "environments": ["x"]}
    client, recorder = client_of(
        reply(200, {"images": [image], "total_bytes": 5, "unused_bytes": 0}),
        reply(200, {"removed": [{**image, "environments": []}], "freed_bytes": 5}),
    )
    assert client.images() == [ctl.Image("sha256:1", ("env:a",), 5, ("x",))]
    assert client.prune_images() == [ctl.Image("sha256:1", ("env:a",), 5, ())]
    assert [(r.method, r.path) for r in recorder.requests] == [
        ("GET", "/api/v1/images"),
        ("POST", "/api/v1/images/prune"),
    ]


def test_an_images_code_volumes_count_in_its_disk_bytes() -> None:
    image = {"id": "sha256:1", "size": 5, "code_volumes_bytes": 7}
    client, _ = client_of(
        reply(200, {"images": [image], "total_bytes": 12, "unused_bytes": 12})
    )
    (found,) = client.images()
    assert (found.size, found.code_volumes_bytes, found.disk_bytes) == (5, 7, 12)
    assert ctl.Image("sha256:2", size=3).disk_bytes == 3  # an older controller's


def test_pools_are_set_listed_and_reset() -> None:
    pool = {
        "environment": "data",
        "type": "http",
        "size": 2,
        "limits": {"memory_mb": 1024, "cpus": 1.0, "pids": 256},
        "options": {"read_only": True},
        "source": "environment",
        "ready": 1,
        "starting": 1,
    }
    client, recorder = client_of(
        reply(200, pool), reply(200, [pool]), reply(200, []), reply(204)
    )
    got = client.set_pool("data", "http", 2, limits=ctl.Limits(memory_mb=1024))
    assert (got.size, got.ready, got.starting) == (2, 1, 1)
    assert got.limits == ctl.Limits(memory_mb=1024, cpus=1.0, pids=256)
    assert client.pools("data") == [got]
    assert client.pools() == []
    client.reset_pool("data", "http")
    assert [(r.method, r.path) for r in recorder.requests] == [
        ("PUT", "/api/v1/environments/data/pools/http"),
        ("GET", "/api/v1/environments/data/pools"),
        ("GET", "/api/v1/pools"),
        ("DELETE", "/api/v1/environments/data/pools/http"),
    ]
    assert json.loads(recorder.requests[0].body or b"") == {
        "size": 2,
        "limits": {"memory_mb": 1024},
    }


def test_missing_fields_take_defaults() -> None:
    client, _ = client_of(reply(200, [{"name": "bare"}]))
    [env] = client.environments()
    assert env == ctl.Environment(name="bare")


def test_runtimes_jobs_and_log_page() -> None:
    runtime = {
        "python": "3.13",
        "version": "3.13.5",
        "image": "beephost/python:3.13",
        "source": "debian",
        "initialised": True,
    }
    page = {"job": JOB, "lines": [{"seq": 3, "line": "a"}], "next": 3}
    client, recorder = client_of(
        reply(200, [runtime]),
        reply(202, JOB),
        reply(200, [JOB]),
        reply(200, page),
    )
    assert client.runtimes()[0].version == "3.13.5"
    assert client.init_runtime().id == "job-1"
    assert recorder.requests[1].json() == {}  # no python: the controller's default
    assert client.jobs()[0].status == "running"
    log = client.job_log("job-1", after=2)
    assert log.lines == (LogLine(3, "a"),)
    assert log.next == 3
    assert recorder.requests[3].path == "/api/v1/jobs/job-1/log?after=2&limit=1000"


def test_backend_calls() -> None:
    client, recorder = client_of(
        reply(202, BACKEND),
        reply(200, [{k: v for k, v in BACKEND.items() if k != "token"}]),
        reply(200, {"url": "unix:///run/p.sock", "token": "tok"}),
        Response(200, {"content-type": "text/plain"}, b"line 1\nline 2\n"),
        reply(204),
    )
    backend = client.start_backend(
        "data", "http", port=5001, limits=Limits(memory_mb=512), options={"x": 1}
    )
    assert recorder.requests[0].json() == {
        "environment": "data",
        "type": "http",
        "port": 5001,
        "limits": {"memory_mb": 512},
        "options": {"x": 1},
    }
    assert backend.token == "tok"
    assert "tok" not in repr(backend)  # secrets stay out of logs
    assert backend.limits == Limits(512, 1.0, 128)
    assert client.backends()[0].token is None
    assert client.backend_connection("b-1").url == "unix:///run/p.sock"
    assert client.backend_logs("b-1", tail=2) == "line 1\nline 2\n"
    assert recorder.requests[3].path == "/api/v1/backends/b-1/logs?tail=2"
    client.stop_backend("b-1")
    assert recorder.requests[4].method == "DELETE"


def test_install_calls() -> None:
    client, recorder = client_of(
        reply(202, {**JOB, "kind": "install", "target": "b-1", "status": "queued"}),
        reply(200, {"packages": [{"name": "tabulate", "version": "0.9.0"}]}),
    )
    job = client.install("b-1", ["tabulate", "rich>=13"])
    assert (job.kind, job.target, job.status) == ("install", "b-1", "queued")
    assert recorder.requests[0].method == "POST"
    assert recorder.requests[0].path == "/api/v1/backends/b-1/packages"
    assert recorder.requests[0].json() == {"packages": ["tabulate", "rich>=13"]}
    assert client.installed_packages("b-1") == [
        ctl.InstalledPackage("tabulate", "0.9.0")
    ]
    assert recorder.requests[1].path == "/api/v1/backends/b-1/packages"


def test_connect_backend_builds_a_client_from_the_connection() -> None:
    client, _ = client_of(reply(200, {"url": "http://127.0.0.1:9", "token": "t"}))
    with client.connect_backend("b-1", timeout=3) as backend_client:
        assert isinstance(backend_client, bc.Client)
        assert backend_client.url == "http://127.0.0.1:9"
        assert backend_client.timeout.request == 3


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (error(409, "conflict", "environment 'e' exists"), bc.Conflict),
        # A controller older than the `conflict` code; a 409 without an error body.
        (error(409, "invalid_request", "environment 'e' exists"), bc.Conflict),
        (reply(409, content=b"conflict"), bc.Conflict),
        # The code decides, not the status: an unrelated code keeps its class.
        (error(409, "interrupted", "stopped"), bc.Interrupted),
        (error(400, "invalid_request", "bad name"), bc.InvalidRequest),
        (error(404, "not_found", "no environment 'x'"), bc.NotFound),
        (error(401, "unauthorized", "token"), bc.Unauthorized),
        (error(503, "unavailable", "starting"), bc.Unavailable),
        (reply(401, content=b"<html>"), bc.Unauthorized),
        (reply(404, {"detail": "Not Found"}), bc.NotFound),
        (error(418, "brand_new", "a newer code"), bc.BeepHostError),
    ],
)
def test_errors_map_to_the_taxonomy(
    response: Response, expected: type[bc.BeepHostError]
) -> None:
    client, _ = client_of(response)
    with pytest.raises(expected) as caught:
        client.environment("x")
    assert type(caught.value) is expected
    assert isinstance(caught.value.__cause__, bc.ErrorReply)
    assert caught.value.__cause__.status == response.status


def test_a_missing_route_says_the_controller_may_be_older() -> None:
    client, _ = client_of(reply(404, {"detail": "Not Found"}))
    with pytest.raises(bc.NotFound, match="does not serve GET /api/v1/backends") as e:
        client.backends()
    assert e.value.data == {"status": 404, "route": "GET /api/v1/backends"}


@pytest.mark.parametrize("code", ["conflict", "invalid_request"])
def test_conflict_keeps_message_and_data(code: str) -> None:
    client, _ = client_of(error(409, code, "exists", environment="e"))
    with pytest.raises(bc.Conflict) as caught:
        client.create_environment("e")
    assert caught.value.message == "exists"
    assert caught.value.data == {"environment": "e"}
    assert caught.value.wire_code == "conflict"
    assert isinstance(caught.value.__cause__, bc.ErrorReply)
    assert caught.value.__cause__.payload["code"] == code


def test_a_body_that_is_not_json_is_an_internal_error() -> None:
    client, _ = client_of(reply(200, content=b"<html>"))
    with pytest.raises(bc.InternalError):
        client.environments()
    client, _ = client_of(reply(200, {"not": "a list"}))
    with pytest.raises(bc.InternalError, match="list of environments"):
        client.environments()


def ndjson(*items: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(item).encode() + b"\n" for item in items)


def pieces(data: bytes, size: int = 7) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def test_wait_job_follows_the_stream() -> None:
    done = {**JOB, "status": "succeeded", "finished_at": 3.0}
    stream = ndjson(
        {"seq": 1, "line": "resolving"},
        {"event": "from-the-future"},
        {"seq": 2, "line": "building é"},
        {"job": done},
    )
    client, recorder = client_of(reply(200, content=pieces(stream)))
    seen: list[LogLine] = []
    job = client.wait_job("job-1", on_log=seen.append)
    assert job.succeeded
    assert job.finished
    assert [line.line for line in seen] == ["resolving", "building é"]
    assert recorder.requests[0].path == "/api/v1/jobs/job-1/log/stream"


def test_wait_job_follows_again_without_repeating_lines() -> None:
    done = {**JOB, "status": "failed", "error": "pip exploded"}
    first = ndjson({"seq": 1, "line": "a"}, {"seq": 2, "line": "b"})  # ended early

    def broken(request: Request) -> Response:
        def body() -> Iterator[bytes]:
            yield ndjson({"seq": 1, "line": "a"}, {"seq": 2, "line": "b"})
            raise bc.ConnectionLost("reset")

        return reply(200, content=body())

    again = ndjson(
        {"seq": 1, "line": "a"},
        {"seq": 2, "line": "b"},
        {"seq": 3, "line": "c"},
        {"job": done},
    )
    client, recorder = client_of(
        reply(200, content=first), broken, reply(200, content=again)
    )
    seen: list[str] = []
    job = client.wait_job("job-1", on_log=lambda line: seen.append(line.line))
    assert seen == ["a", "b", "c"]
    assert (job.status, job.error, job.succeeded) == ("failed", "pip exploded", False)
    assert len(recorder.requests) == 3


def test_wait_job_errors() -> None:
    client, _ = client_of(error(404, "not_found", "no job 'x'"))
    with pytest.raises(bc.NotFound):
        client.wait_job("x")

    def slow(request: Request) -> Response:
        raise bc.ExecutionTimeout("no reply", {"client_side": True})

    client, _ = client_of(slow)
    with pytest.raises(bc.ExecutionTimeout, match="did not finish within 5s") as caught:
        client.wait_job("job-1", timeout=5)
    assert caught.value.data == {"job": "job-1", "client_side": True}
    client, _ = client_of()
    with pytest.raises(bc.ExecutionTimeout):
        client.wait_job("job-1", timeout=0)


def test_stream_items() -> None:
    assert stream_item(b'{"seq": 4, "line": "x"}') == LogLine(4, "x")
    assert stream_item(b'{"job": {"id": "j", "status": "failed"}}') == Job(
        "j", status="failed"
    )
    assert stream_item(b"  ") is None
    assert stream_item(b'{"keepalive": true}') is None
    with pytest.raises(bc.InternalError):
        stream_item(b"nope")


def test_wait_backend_reports_changes_and_returns_ready() -> None:
    states = ["starting", "starting", "ready"]
    client, _ = client_of(
        *[reply(200, {**BACKEND, "status": status}) for status in states]
    )
    changes: list[str] = []
    backend = client.wait_backend("b-1", on_status=lambda b: changes.append(b.status))
    assert backend.status == "ready"
    assert changes == ["starting", "ready"]


def test_wait_backend_long_polls_after_the_first_look() -> None:
    states = ["starting", "starting", "ready"]
    client, recorder = client_of(
        *[reply(200, {**BACKEND, "status": status}) for status in states]
    )
    client.wait_backend("b-1", timeout=60)
    paths = [r.path for r in recorder.requests]
    assert paths[0] == "/api/v1/backends/b-1"
    assert paths[1:] == ["/api/v1/backends/b-1?wait=10.0&seen=starting"] * 2


def test_wait_backend_fails_fast_when_the_backend_ends() -> None:
    exited = {**BACKEND, "status": "exited", "reason": "exit code 1"}
    client, _ = client_of(reply(200, exited))
    with pytest.raises(bc.Unavailable, match="b-1 is exited: exit code 1"):
        client.wait_backend("b-1")
    stuck = {**BACKEND, "status": "unhealthy", "reason": "no answer"}
    client, _ = client_of(reply(200, stuck), reply(200, stuck), reply(200, stuck))
    with pytest.raises(bc.ExecutionTimeout, match="still unhealthy \\(no answer\\)"):
        client.wait_backend("b-1", timeout=0.05)


def test_backend_reached() -> None:
    assert backend_reached(Backend("b", status="ready"), "ready")
    assert not backend_reached(Backend("b", status="unhealthy"), "ready")
    assert backend_reached(Backend("b", status="stopped"), "stopped")
    with pytest.raises(bc.Unavailable):
        backend_reached(Backend("b", status="stopped"), "ready")


def test_response_releases_once() -> None:
    released: list[int] = []
    response = Response(
        200, content=iter([b"a", b"", b"b"]), on_close=lambda: released.append(1)
    )
    assert response.read() == b"ab"
    response.close()
    assert released == [1]


def test_close_closes_the_transport_and_urls_are_checked() -> None:
    transport = MockControllerTransport(lambda r: reply(200, {}))
    with ControllerClient(transport=transport) as client:
        assert client.url == ctl.DEFAULT_CONTROLLER_URL
        assert client.timeout == bc.Timeout()
    assert transport.closed
    with pytest.raises(ValueError, match="not an http"):
        ControllerClient("ftp://ctl/")
    assert ControllerClient("http://ctl:8600/prefix", timeout=7).timeout.request == 7
    assert (
        ControllerClient("unix:///run/ctl/api.sock").url == "unix:///run/ctl/api.sock"
    )


@pytest.mark.parametrize(
    "url", ["unix://relative/api.sock", "unix:relative.sock", "unix:///a.sock?x=1"]
)
def test_unix_urls_need_an_absolute_path(url: str) -> None:
    with pytest.raises(ValueError, match="not a unix:///absolute/socket/path URL"):
        ControllerClient(url)


def _authorization(client: ControllerClient) -> str | None:
    transport = client._transport
    assert isinstance(transport, ctl.HTTPControllerTransport)
    return transport._endpoint.headers.get("Authorization")


def test_url_and_token_default_to_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("BEEPHOST_CONTROLLER_URL", raising=False)
    monkeypatch.delenv("BEEPHOST_CONTROLLER_TOKEN", raising=False)
    client = ControllerClient()
    assert client.url == ctl.DEFAULT_CONTROLLER_URL
    assert _authorization(client) is None
    monkeypatch.setenv("BEEPHOST_CONTROLLER_URL", "unix:///run/ctl/api.sock")
    monkeypatch.setenv("BEEPHOST_CONTROLLER_TOKEN", "from-env")
    client = ControllerClient()
    assert client.url == "unix:///run/ctl/api.sock"
    assert _authorization(client) == "Bearer from-env"
    # Explicit arguments win.
    client = ControllerClient("http://ctl:1", token="explicit")
    assert client.url == "http://ctl:1"
    assert _authorization(client) == "Bearer explicit"
    # An empty variable counts as unset.
    monkeypatch.setenv("BEEPHOST_CONTROLLER_URL", "")
    monkeypatch.setenv("BEEPHOST_CONTROLLER_TOKEN", "")
    client = ControllerClient()
    assert client.url == ctl.DEFAULT_CONTROLLER_URL
    assert _authorization(client) is None

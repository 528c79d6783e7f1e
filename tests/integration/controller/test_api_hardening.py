"""The controller's API against hostile input (issue 11): a real uvicorn server, real
SQLite, the real uv resolver where it matters; images from the in-memory builder.

Requirements are plain PEP 508 or refused; secrets never reach a job log or an
environment's status; auth and the body limit come before the body is read; two
Authorization headers are refused; no request is a 500; PUT names must agree; HEAD,
/docs and 405's Allow behave.
"""

import contextlib
import http.client
import itertools
import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from beephost_controller.app import create_app
from beephost_controller.resolver import Lock, resolve
from beephost_controller.settings import Settings
from beephost_controller.testing import MemoryContainers, MemoryImageBuilder
from tests.integration.controller.test_controller_api import (
    Api,
    fake_resolver,
)
from tests.integration.serving import port_of, served
from tests.ports import free_port

TOKEN = "s3cret-controller-token-0123456789"
LIMIT = 4096


class AppApi(Api):
    """An Api that also holds the application it talks to."""

    def __init__(self, port: int, token: str | None, app: FastAPI) -> None:
        super().__init__(port, token)
        self.app = app


def real_resolver(requirements: list[str], python: str) -> Lock:
    return resolve(requirements, python, timeout=60)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., AppApi]]:
    servers = contextlib.ExitStack()
    numbers = itertools.count()

    def start(
        resolver: Callable[[list[str], str], Lock] = fake_resolver, **settings: Any
    ) -> AppApi:
        config = Settings(
            database=tmp_path / f"controller{next(numbers)}.db",
            token=SecretStr(TOKEN),
            max_request_bytes=LIMIT,
            **settings,
        )
        app = create_app(
            config,
            builder=MemoryImageBuilder(),
            resolver=resolver,
            containers=MemoryContainers(),
        )
        server = servers.enter_context(served(app, host="127.0.0.1", port=0))
        return AppApi(port_of(server), TOKEN, app)

    with servers:
        yield start


@pytest.fixture
def api(serve: Callable[..., AppApi]) -> AppApi:
    """A server with the default settings and the fake resolver."""
    return serve()


def raw(
    api: Api,
    method: str,
    path: str,
    headers: list[tuple[str, str]],
    body: bytes | None = None,
    chunks: list[bytes] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One request with exactly these headers (repeats allowed), maybe chunked."""
    connection = http.client.HTTPConnection("127.0.0.1", api.port, timeout=30)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        for name, value in headers:
            connection.putheader(name, value)
        if chunks is not None:
            connection.putheader("Transfer-Encoding", "chunked")
        elif body is not None:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders()
        if chunks is not None:
            try:
                for chunk in chunks:
                    connection.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                connection.send(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server answered and closed before the rest was sent
        elif body is not None:
            connection.send(body)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def error_of(raw_body: bytes) -> dict[str, Any]:
    error: dict[str, Any] = json.loads(raw_body)["error"]
    assert set(error) == {"code", "message", "data"}
    return error


# -- item 1: requirements ------------------------------------------------------------------

HOSTILE = [
    ("x @ http://127.0.0.1:1/${BEEPHOST_CONTROLLER_TOKEN}/x.tar.gz", "'$'"),
    ("six ; python_version > '3' --index-url http://127.0.0.1:1/", "not allowed"),
    ("--index-url http://127.0.0.1:1/", "options are not allowed"),
    ("-r /etc/passwd", "options are not allowed"),
    ("six \\", "backslash"),
    ("six==1.0 --hash=sha256:00", "options are not allowed"),
    ("six>=>1", "not a PEP 508 requirement"),
    ("x @ file:///etc/passwd", "direct references"),
    ("x @ https://example.invalid/x.tar.gz", "direct references"),
    ("x @ git+https://example.invalid/x.git", "direct references"),
]


@pytest.mark.parametrize(("requirement", "reason"), HOSTILE)
def test_requirements_that_are_not_plain_pep508_are_refused(
    api: AppApi, requirement: str, reason: str
) -> None:
    for body in (
        {"name": "h", "requirements": [requirement]},
        {"name": "h", "requirements_txt": f"attrs\n{requirement}\n"},
    ):
        status, answer = api.call("POST", "/api/v1/environments", body)
        assert status == 400, answer
        assert answer["error"]["code"] == "invalid_request"
        assert reason in answer["error"]["message"], answer
        assert TOKEN not in json.dumps(answer)
    assert api.call("GET", "/api/v1/environments")[1] == []


@pytest.mark.parametrize(
    ("requirement", "status", "message"),
    [
        (HOSTILE[0][0], 400, "environment variables are never expanded"),
        ("x @ file:///etc/passwd", 400, "allowed URL schemes: http, https"),
        ("x @ https://example.invalid/x-1.0.tar.gz", 201, None),
    ],
    ids=["variable", "scheme-not-allowed", "scheme-allowed"],
)
def test_allowed_url_schemes_still_refuse_variables(
    serve: Callable[..., Api], requirement: str, status: int, message: str | None
) -> None:
    api = serve(requirement_url_schemes=["http", "https"])
    got, answer = api.call(
        "POST", "/api/v1/environments", {"name": "h", "requirements": [requirement]}
    )
    assert got == status
    if message is not None:
        assert message in answer["error"]["message"]


def test_a_token_in_a_failing_resolution_reaches_no_log_and_no_status(
    serve: Callable[..., Api],
) -> None:
    """The last line of defence: uv's error names the URL (with the token in it, as a
    user with an allowed http scheme may write it); job log, job and environment
    errors show it redacted."""
    api = serve(real_resolver, requirement_url_schemes=["http"])
    port = free_port()
    status, env = api.call(
        "POST",
        "/api/v1/environments",
        {
            "name": "leak",
            "requirements": [f"x @ http://127.0.0.1:{port}/{TOKEN}/x.tar.gz"],
        },
    )
    assert status == 201, env
    job = api.wait_job(env["job_id"])
    assert job["status"] == "failed"
    _, page = api.call("GET", f"/api/v1/jobs/{env['job_id']}/log")
    _, failed = api.call("GET", "/api/v1/environments/leak")
    # The requirement is echoed as the user sent it; its status must not repeat it.
    seen = json.dumps([job, page, failed["status"], failed["error"]])
    assert "[redacted]" in seen  # uv's error did name the URL
    assert TOKEN not in seen


def test_hostile_backend_environment_name_is_refused_in_words(api: AppApi) -> None:
    for method, path, body in [
        ("POST", "/api/v1/environments", {"name": "Bad Name"}),
        ("POST", "/api/v1/backends", {"environment": "Bad/..", "type": "http"}),
        ("PUT", "/api/v1/environments/Bad%20Name", {"name": "Bad Name"}),
    ]:
        status, answer = api.call(method, path, body)
        assert status == 400, (method, path)
        message = answer["error"]["message"]
        assert "lowercase letters, digits" in message  # the rule, in words
        assert "^[a-z0-9]" not in message  # not the pattern


def test_put_refuses_a_body_naming_another_environment(api: AppApi) -> None:
    status, answer = api.call("PUT", "/api/v1/environments/one", {"name": "two"})
    assert status == 400
    assert answer["error"]["code"] == "invalid_request"
    assert "'one'" in answer["error"]["message"]
    assert "'two'" in answer["error"]["message"]
    assert answer["error"]["data"] == {"path": "one", "body": "two"}
    assert api.call("GET", "/api/v1/environments")[1] == []
    assert api.call("PUT", "/api/v1/environments/one", {"name": "one"})[0] == 201


# -- items 2 and 3: auth and the body limit before the body --------------------------------


def test_unauthenticated_body_is_refused_before_it_is_read(api: AppApi) -> None:
    """The server answers 401 having read none of a body far over the limit: the
    request announces 64 MiB and sends none of it."""
    connection = socket.create_connection(("127.0.0.1", api.port), timeout=10)
    with connection:
        connection.sendall(
            b"POST /api/v1/environments HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: 67108864\r\n\r\n"
        )
        answer = connection.recv(65536)
    assert answer.startswith(b"HTTP/1.1 401 "), answer[:200]
    assert b'"unauthorized"' in answer


def test_body_over_the_limit_is_413_with_or_without_a_length(api: AppApi) -> None:
    auth = [("Authorization", f"Bearer {TOKEN}"), ("Content-Type", "application/json")]
    big = json.dumps({"name": "big", "requirements_txt": "#" * (2 * LIMIT)}).encode()
    status, _, body = raw(api, "POST", "/api/v1/environments", auth, body=big)
    assert status == 413
    error = error_of(body)
    assert error["code"] == "too_large"
    assert error["data"]["limit"] == LIMIT
    # Chunked: no Content-Length to refuse early; the read stops at the limit.
    chunks = [big[i : i + 1024] for i in range(0, len(big), 1024)]
    status, _, body = raw(api, "POST", "/api/v1/environments", auth, chunks=chunks)
    assert status == 413, body
    assert error_of(body)["code"] == "too_large"
    # Under the limit, chunked, it works.
    small = json.dumps({"name": "small"}).encode()
    status, _, body = raw(api, "POST", "/api/v1/environments", auth, chunks=[small])
    assert status == 201, body
    assert [e["name"] for e in api.call("GET", "/api/v1/environments")[1]] == ["small"]


def test_two_authorization_headers_are_refused(api: AppApi) -> None:
    good = ("Authorization", f"Bearer {TOKEN}")
    status, headers, body = raw(
        api, "GET", "/api/v1/environments", [good, ("Authorization", "Bearer nope")]
    )
    assert status == 401
    assert error_of(body)["code"] == "unauthorized"
    assert "one Authorization header" in error_of(body)["message"]
    assert headers.get("www-authenticate") == "Bearer"
    assert raw(api, "GET", "/api/v1/environments", [good, good])[0] == 401
    assert raw(api, "GET", "/api/v1/environments", [good])[0] == 200


# -- item 4: no 500 ------------------------------------------------------------------------


def test_log_after_beyond_64_bits_is_a_typed_400(api: AppApi) -> None:
    _, env = api.call("POST", "/api/v1/environments", {"name": "e"})
    for after in ("9223372036854775808", "-9223372036854775809", "1e400"):
        status, answer = api.call(
            "GET", f"/api/v1/jobs/{env['job_id']}/log?after={after}"
        )
        assert status == 400, answer
        assert answer["error"]["code"] == "invalid_request"
    status, page = api.call(
        "GET", f"/api/v1/jobs/{env['job_id']}/log?after=9223372036854775807"
    )
    assert status == 200
    assert page["lines"] == []


def test_an_unexpected_exception_has_the_internal_error_shape(api: AppApi) -> None:
    """The last resort: a resolver that crashes is a failed job, but a route that
    crashes (here: the store closed under it) still answers the documented body."""
    status, _ = api.call("GET", "/api/v1/environments")
    assert status == 200
    # Break the store of the running app: the next request's route raises.
    api.app.state.store.close()
    status, headers, body = raw(
        api, "GET", "/api/v1/environments", [("Authorization", f"Bearer {TOKEN}")]
    )
    assert status == 500
    assert headers["content-type"] == "application/json"
    error = error_of(body)
    assert error["code"] == "internal"
    assert "GET /api/v1/environments" in error["message"]


# -- item 7: HEAD, /docs, Allow ------------------------------------------------------------


def test_head_answers_like_get_without_a_body(api: AppApi) -> None:
    auth = [("Authorization", f"Bearer {TOKEN}")]
    for path in ("/health", "/api/v1/environments", "/openapi.json", "/docs"):
        get_status, get_headers, get_body = raw(api, "GET", path, auth)
        status, headers, body = raw(api, "HEAD", path, auth)
        assert (status, body) == (get_status, b""), path
        assert headers["content-type"] == get_headers["content-type"]
        assert headers["content-length"] == str(len(get_body))
    # HEAD needs the token like GET does.
    assert raw(api, "HEAD", "/api/v1/environments", [])[0] == 401


def test_docs_load_nothing_from_elsewhere(api: AppApi) -> None:
    status, headers, body = raw(api, "GET", "/docs", [])
    assert status == 200
    assert headers["content-type"].startswith("text/html")
    page = body.decode()
    assert "/api/v1/environments/{name}" in page
    assert "cdn" not in page.lower()
    assert "<script" not in page
    assert raw(api, "GET", "/redoc", [])[0] == 404


def test_405_lists_every_allowed_method(api: AppApi) -> None:
    auth = [("Authorization", f"Bearer {TOKEN}")]
    status, headers, body = raw(api, "PATCH", "/api/v1/environments/x", auth)
    assert status == 405
    assert error_of(body)["code"] == "invalid_request"
    assert headers["allow"] == "DELETE, GET, HEAD, PUT"
    status, headers, _ = raw(api, "PATCH", "/api/v1/environments", auth)
    assert status == 405
    assert headers["allow"] == "GET, HEAD, POST"


def test_an_undeclared_query_parameter_is_a_typed_400(api: AppApi) -> None:
    assert api.call("GET", "/api/v1/backends?mine=false")[0] == 200
    for query in ("wiat=30", "=null", "mine=false&mine2=1"):
        status, body = api.call("GET", f"/api/v1/backends?{query}")
        assert status == 400, query
        assert body["error"]["code"] == "invalid_request"
        assert "mine" in body["error"]["data"]["declared"]
    # Declared by a dependency of the route (the backend id's, the log's tail) counts.
    status, body = api.call("GET", "/api/v1/backends/b-none/logs?tail=5")
    assert status == 404, body  # the parameter passed; the backend is unknown
    status, body = api.call("GET", "/api/v1/backends/b-none/logs?tial=5")
    assert (status, body["error"]["data"]["unknown"]) == (400, ["tial"])
    # Unauthenticated: the gate's 401 comes first.
    assert api.call("GET", "/api/v1/backends?wiat=30", token=None)[0] == 401
    assert api.call("GET", "/health?x=1")[0] == 400

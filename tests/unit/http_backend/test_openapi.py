"""The OpenAPI document is complete: every route, its bodies, and every error status.

The table below is the contract the client SDK codes against; the app is built without
starting anything (no workers, no sockets).
"""

import importlib
import pkgutil
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import SecretStr

from beephost_http_backend import Settings, create_app, routes
from beephost_protocol.reference_page import render_reference

COMMON = {400, 401, 413, 415, 500, 503}
WORKER = {404, 409, 410, 422, 504}

# (method, path): (operation id, success status, success schema, body schema, errors)
CONTRACT: dict[tuple[str, str], tuple[str, int, str, str | None, set[int]]] = {
    ("post", "/api/eval"): (
        "evaluate",
        200,
        "ValueResult",
        "Evaluate",
        COMMON | WORKER,
    ),
    ("post", "/api/exec"): (
        "execute",
        200,
        "ExecResult",
        "ExecRequest",
        COMMON | WORKER,
    ),
    ("post", "/api/exec/stream"): (
        "execute_stream",
        200,
        "StreamLine",
        "ExecRequest",
        COMMON | WORKER,
    ),
    ("post", "/api/sessions"): (
        "open_session",
        201,
        "SessionOpened",
        "SessionOpenRequest",
        COMMON | {429},
    ),
    ("get", "/api/sessions"): ("list_sessions", 200, "SessionListing", None, COMMON),
    ("get", "/api/sessions/{session}"): (
        "describe_session",
        200,
        "SessionDescription",
        None,
        COMMON | WORKER,
    ),
    ("delete", "/api/sessions/{session}"): (
        "close_session",
        200,
        "SessionClosed",
        None,
        COMMON | {404},
    ),
    ("post", "/api/sessions/{session}/interrupt"): (
        "interrupt_session",
        200,
        "InterruptResult",
        None,
        COMMON | {404, 410},
    ),
    ("post", "/api/sessions/{session}/objects"): (
        "create_object",
        201,
        "ValueResult",
        "ObjectCreateRequest",
        COMMON | WORKER | {429},
    ),
    ("get", "/api/sessions/{session}/objects"): (
        "list_objects",
        200,
        "HandleList",
        None,
        COMMON | WORKER,
    ),
    ("get", "/api/sessions/{session}/objects/{handle}/attributes/{name}"): (
        "get_attribute",
        200,
        "ValueResult",
        None,
        COMMON | WORKER | {429},
    ),
    ("put", "/api/sessions/{session}/objects/{handle}/attributes/{name}"): (
        "set_attribute",
        200,
        "EmptyResult",
        "SetAttributeRequest",
        COMMON | WORKER,
    ),
    ("post", "/api/sessions/{session}/objects/{handle}/call"): (
        "call_object",
        200,
        "ValueResult",
        "CallRequest",
        COMMON | WORKER | {429},
    ),
    ("post", "/api/sessions/{session}/objects/release"): (
        "release_objects",
        200,
        "ReleaseResult",
        "ReleaseRequest",
        COMMON | WORKER,
    ),
    ("put", "/api/leases/{lease}"): ("renew_lease", 200, "LeaseRenewed", None, COMMON),
    ("delete", "/api/leases/{lease}"): (
        "release_lease",
        200,
        "LeaseReleased",
        None,
        COMMON | WORKER,
    ),
    ("put", "/api/files/{path}"): (
        "write_file",
        201,
        "FileInfo",
        "",  # application/octet-stream: the file's bytes
        COMMON - {413, 415} | {200, 404, 409, 429},
    ),
    ("get", "/api/files/{path}"): (
        "read_file",
        200,
        "",  # application/octet-stream
        None,
        COMMON - {415} | {206, 404, 416},
    ),
    ("post", "/api/fs/stat"): (
        "stat_file",
        200,
        "FileInfo",
        "FileStat",
        COMMON | {404},
    ),
    ("post", "/api/fs/list"): (
        "list_files",
        200,
        "FileListing",
        "FileList",
        COMMON | {404},
    ),
    ("post", "/api/fs/mkdir"): (
        "make_directory",
        200,
        "FileInfo",
        "FileMkdir",
        COMMON | {404, 409},
    ),
    ("post", "/api/fs/remove"): (
        "remove_file",
        200,
        "FileRemoved",
        "FileRemove",
        COMMON | {404, 409},
    ),
    ("post", "/api/fs/rename"): (
        "rename_file",
        200,
        "FileInfo",
        "FileRename",
        COMMON | {404, 409},
    ),
    ("get", "/api/fs/usage"): (
        "workspace_usage",
        200,
        "WorkspaceDescription",
        None,
        COMMON - {415},
    ),
    ("get", "/health"): ("health", 200, "Liveness", None, set()),
    ("get", "/ready"): ("ready", 200, "Readiness", None, {503}),
    ("get", "/metrics"): ("metrics", 200, "", None, COMMON - {415, 503}),
}


@pytest.fixture
def app() -> FastAPI:
    return create_app(Settings())


@pytest.fixture
def schema(app: FastAPI) -> dict[str, Any]:
    return app.openapi()


def _operations(schema: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method, path): operation
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
    }


def _ref(content: dict[str, Any], media: str) -> str:
    ref: str = content[media]["schema"]["$ref"]
    return ref.removeprefix("#/components/schemas/")


def test_every_route_is_documented_and_nothing_else(schema: dict[str, Any]) -> None:
    documented = set(_operations(schema))
    assert documented == set(CONTRACT)
    # Every module of the routes package, one router each: a new one is seen too.
    modules = [
        importlib.import_module(f"{routes.__name__}.{module.name}")
        for module in pkgutil.iter_modules(routes.__path__)
    ]
    routed = {
        # A catch-all path parameter is {path:path} in the route, {path} in OpenAPI.
        (method.lower(), route.path.replace(":path}", "}"))
        for module in modules
        for route in module.router.routes
        if isinstance(route, APIRoute) and route.include_in_schema
        for method in route.methods or ()
    }
    assert routed == documented


@pytest.mark.parametrize("key", list(CONTRACT), ids=lambda key: f"{key[0]} {key[1]}")
def test_operation_contract(schema: dict[str, Any], key: tuple[str, str]) -> None:
    operation = _operations(schema)[key]
    operation_id, status, success, body, errors = CONTRACT[key]
    assert operation["operationId"] == operation_id
    assert operation["tags"]
    assert operation["summary"]
    assert operation["description"]
    responses = operation["responses"]
    assert {int(s) for s in responses} == {status} | errors
    ok = responses[str(status)]["content"]
    if key == ("get", "/api/files/{path}"):
        assert "application/octet-stream" in ok
    elif key == ("post", "/api/exec/stream"):
        assert _ref(ok, "application/x-ndjson") == success
    elif key == ("get", "/metrics"):
        assert "text/plain" in ok
    else:
        assert _ref(ok, "application/json") == success
    for error_status in errors - {200, 206}:
        error = responses[str(error_status)]
        assert _ref(error["content"], "application/json") == "ErrorResponse"
        assert error["description"].startswith("`")  # names its error code
    if body is None:
        assert "requestBody" not in operation
    elif not body:
        assert "application/octet-stream" in operation["requestBody"]["content"]
    else:
        assert _ref(operation["requestBody"]["content"], "application/json") == body


def test_every_reference_resolves(schema: dict[str, Any]) -> None:
    defined = set(schema["components"]["schemas"])

    def refs(node: Any) -> set[str]:
        if isinstance(node, dict):
            found = {node["$ref"].rsplit("/", 1)[-1]} if "$ref" in node else set()
            return found.union(*(refs(v) for v in node.values()))
        if isinstance(node, list):
            return set().union(*(refs(v) for v in node))
        return set()

    assert refs(schema) <= defined
    assert "HTTPValidationError" not in defined  # FastAPI's 422 never happens here


def test_the_timeout_header_is_documented(schema: dict[str, Any]) -> None:
    operation = _operations(schema)[("post", "/api/eval")]
    names = {p["name"]: p["in"] for p in operation["parameters"]}
    assert names == {"X-Beephost-Timeout": "header", "Beephost-Lease": "header"}
    get_attr = _operations(schema)[
        ("get", "/api/sessions/{session}/objects/{handle}/attributes/{name}")
    ]
    assert {p["name"] for p in get_attr["parameters"]} == {
        "session",
        "handle",
        "name",
        "timeout",
        "X-Beephost-Timeout",
        "Beephost-Lease",
    }


def test_security_scheme_only_with_a_token(schema: dict[str, Any]) -> None:
    assert "securitySchemes" not in schema["components"]
    secured = create_app(Settings(token=SecretStr("s3cret-s3cret"))).openapi()
    assert secured["components"]["securitySchemes"] == {
        "bearerAuth": {"type": "http", "scheme": "bearer"}
    }
    for (_, path), operation in _operations(secured).items():
        open_path = path in ("/health", "/ready")
        assert ("security" not in operation) == open_path


def test_docs_page_lists_every_operation(schema: dict[str, Any]) -> None:
    page = render_reference(schema)
    assert "<script" not in page
    for operation_id, *_ in CONTRACT.values():
        assert f"id='{operation_id}'" in page
    assert "ErrorResponse" in page
    assert "X-Beephost-Timeout" in page

"""The one mapping: every error becomes its HTTP_STATUS status and the error body."""

import json

import pytest
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request

from beephost_http_backend import errors, handlers
from beephost_http_backend.schemas import ErrorResponse
from beephost_protocol import ERROR_CLASSES, HTTP_STATUS, ErrorCode


def _request(method: str = "GET", path: str = "/x") -> Request:
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [],
        "scheme": "http",
        "server": ("127.0.0.1", 1),
        "root_path": "",
    }
    return Request(scope)


@pytest.mark.parametrize("code", list(ErrorCode))
def test_every_code_gets_its_status_and_the_body(code: ErrorCode) -> None:
    error = ERROR_CLASSES[code]("boom", {"k": 1})
    response = errors.error_response(error)
    assert response.status_code == HTTP_STATUS[code]
    assert response.media_type == "application/json"
    body = json.loads(bytes(response.body))
    assert body == {"error": {"code": code.value, "message": "boom", "data": {"k": 1}}}
    ErrorResponse.model_validate(body)
    has_challenge = "www-authenticate" in response.headers
    assert has_challenge == (code is ErrorCode.UNAUTHORIZED)


def test_validation_errors_are_invalid_request_with_clean_details() -> None:
    exc = RequestValidationError(
        [
            {
                "type": "missing",
                "loc": ("body", "expression"),
                "msg": "Field required",
                "input": {},
            },
            {
                "type": "json_invalid",
                "loc": ("body", 3),
                "msg": "JSON decode error",
                "ctx": {"error": ValueError("x")},
            },
        ]
    )
    error = errors.invalid_request(exc.errors())
    assert error.wire_code == "invalid_request"
    assert error.message == (
        "invalid request: body.expression: Field required; body.3: JSON decode error"
    )
    assert error.data == {
        "errors": [
            {"loc": ["body", "expression"], "msg": "Field required", "type": "missing"},
            {"loc": ["body", "3"], "msg": "JSON decode error", "type": "json_invalid"},
        ]
    }
    json.dumps(error.to_wire())  # nothing unserialisable survives


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("status", "code", "message"),
    [
        (404, "not_found", "no route GET /x"),
        (405, "invalid_request", "GET is not allowed on /x"),
        (413, "too_large", "Request Entity Too Large"),
        (418, "invalid_request", "I'm a Teapot"),
        (502, "internal", "Bad Gateway"),
    ],
)
async def test_routing_errors_use_the_one_table(
    status: int, code: str, message: str
) -> None:
    request = _request()
    handler = handlers._on_http_exception
    response = await handler(request, HTTPException(status, headers={"Allow": "POST"}))
    body = json.loads(bytes(response.body))
    assert body["error"]["code"] == code
    assert body["error"]["message"] == message
    # 405 keeps its status (for HTTP tools); every other one comes from the table.
    expected = 405 if status == 405 else HTTP_STATUS[ErrorCode(code)]
    assert response.status_code == expected
    assert response.headers["allow"] == "POST"
    assert request.scope[errors.ERROR_CODE_KEY] == code


@pytest.mark.anyio
async def test_a_carried_error_keeps_its_code_and_data() -> None:
    from beephost_protocol.errors import TooLarge

    carried = errors.CarriedError(TooLarge("big", {"limit": 5}))
    assert carried.status_code == 413
    response = await handlers._on_http_exception(_request(), carried)
    assert json.loads(bytes(response.body))["error"] == {
        "code": "too_large",
        "message": "big",
        "data": {"limit": 5},
    }


@pytest.mark.anyio
async def test_unexpected_exceptions_become_internal_without_a_traceback() -> None:
    response = await handlers._on_unexpected(_request(), RuntimeError("oops"))
    assert response.status_code == 500
    body = json.loads(bytes(response.body))
    assert body["error"] == {
        "code": "internal",
        "message": "RuntimeError: oops",
        "data": {},
    }


def test_documented_lists_the_common_errors_plus_the_asked_ones() -> None:
    documented = errors.documented(ErrorCode.NOT_FOUND)
    expected = {HTTP_STATUS[c] for c in errors.COMMON_ERRORS} | {404}
    assert set(documented) == expected | {415}  # a body that is not JSON
    assert set(errors.documented(ErrorCode.NOT_FOUND, json_body=False)) == expected
    assert all(entry["model"] is ErrorResponse for entry in documented.values())
    assert documented[404]["description"].startswith("`not_found`")

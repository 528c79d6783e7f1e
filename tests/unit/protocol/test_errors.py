"""The error taxonomy: every code has a class, and the wire form round-trips."""

from typing import Any

import pytest

from beephost_protocol import errors
from beephost_protocol.errors import ErrorCode


@pytest.mark.parametrize("code", list(ErrorCode))
def test_every_code_round_trips(code: ErrorCode) -> None:
    error = errors.ERROR_CLASSES[code]("boom", {"k": 1})
    decoded = errors.error_from_wire(error.to_wire())
    assert type(decoded) is errors.ERROR_CLASSES[code]
    assert decoded.wire_code == code.value
    assert (decoded.message, decoded.data) == ("boom", {"k": 1})


def test_unknown_code_decodes_to_the_base_class() -> None:
    error = errors.error_from_wire({"code": "from_the_future", "message": "m"})
    assert type(error) is errors.BeepHostError
    assert error.data["code"] == "from_the_future"
    assert error.wire_code == "internal"


def test_every_class_is_registered_once() -> None:
    assert set(errors.ERROR_CLASSES) == set(ErrorCode)
    assert len(set(errors.ERROR_CLASSES.values())) == len(ErrorCode)


def test_conflict_is_its_own_code_and_an_invalid_request() -> None:
    error = errors.Conflict("environment 'e' exists", {"environment": "e"})
    assert isinstance(error, errors.InvalidRequest)
    assert error.to_wire() == {
        "code": "conflict",
        "message": "environment 'e' exists",
        "data": {"environment": "e"},
    }
    decoded = errors.error_from_wire(error.to_wire())
    assert type(decoded) is errors.Conflict
    assert (decoded.message, decoded.data) == (error.message, error.data)
    assert errors.ERROR_CLASSES[ErrorCode.CONFLICT] is errors.Conflict
    assert errors.HTTP_STATUS[ErrorCode.CONFLICT] == 409
    assert errors.GRPC_STATUS[ErrorCode.CONFLICT] == "ALREADY_EXISTS"
    # A plain invalid request stays one: the subclass has its own code.
    assert (
        type(errors.error_from_wire(errors.InvalidRequest("bad").to_wire()))
        is errors.InvalidRequest
    )


def test_every_code_has_an_http_and_grpc_status() -> None:
    assert set(errors.HTTP_STATUS) == set(ErrorCode) == set(errors.GRPC_STATUS)
    # Only the server's own faults are 5xx, except the gateway-style timeout.
    assert {c for c, s in errors.HTTP_STATUS.items() if s >= 500} == {
        ErrorCode.INTERNAL,
        ErrorCode.UNAVAILABLE,
        ErrorCode.TIMEOUT,
    }


@pytest.mark.parametrize(
    ("length", "refused"),
    [(None, False), (b"10", False), (b"11", True), (b"not-a-number", False)],
)
def test_a_declared_body_over_the_limit_is_too_large(
    length: bytes | None, refused: bool
) -> None:
    refusal = errors.declared_body_too_large(length, 10)
    if not refused:
        assert refusal is None
        return
    assert isinstance(refusal, errors.TooLarge)
    assert refusal.message == "request body of 11 bytes exceeds the 10-byte limit"
    assert refusal.data == {"size": 11, "limit": 10}


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (404, ("not_found", "no route GET /x")),
        (405, ("invalid_request", "GET is not allowed on /x")),
        (413, ("too_large", "detail")),
        (418, ("invalid_request", "detail")),
        (502, ("internal", "detail")),
    ],
)
def test_a_framework_refusal_gets_a_code_and_a_message(
    status: int, expected: tuple[str, str]
) -> None:
    code, message = errors.framework_refusal(status, "detail", "GET", "/x")
    assert (code.value, message) == expected


def test_a_validation_summary_names_the_first_five_complaints() -> None:
    complaints: list[dict[str, Any]] = [
        {"loc": (), "msg": "Input should be a valid dictionary"},
        {"loc": ("args", 0), "msg": "too deep"},
        *({"loc": (f"f{i}",), "msg": "Field required"} for i in range(5)),
    ]
    assert errors.validation_summary(complaints, "request") == (
        "request: Input should be a valid dictionary; args.0: too deep; "
        "f0: Field required; f1: Field required; f2: Field required"
    )
    assert errors.validation_summary([], "request") == ""

"""The gRPC error table, status details, token checks and settings: pure code, no sockets."""

import grpc
import pytest
from pydantic import ValidationError

from beephost_core.tokens import TokenCheck
from beephost_protocol import pb_codec
from beephost_protocol.errors import (
    ERROR_CLASSES,
    GRPC_STATUS,
    BeepHostError,
    ErrorCode,
    InternalError,
    InvalidRequest,
)
from beephost_rpc_backend import auth, errors, servicer
from beephost_rpc_backend.settings import Settings


@pytest.mark.parametrize("code", list(ErrorCode))
def test_every_code_has_its_status_and_metadata(code: ErrorCode) -> None:
    error = ERROR_CLASSES[code]("message", {"k": 1})
    assert errors.status_of(error) is grpc.StatusCode[GRPC_STATUS[code]]
    ((key, value),) = errors.trailing_metadata(error)
    assert key == pb_codec.ERROR_METADATA_KEY
    assert type(pb_codec.decode_error(value)) is type(error)


def test_the_base_class_is_internal() -> None:
    assert errors.status_of(BeepHostError("x")) is grpc.StatusCode.INTERNAL
    assert errors.status_of(InternalError("x")) is grpc.StatusCode.INTERNAL


@pytest.mark.parametrize("message", ["short", "ü" * 1000, "x" * 300, "😀" * 100])
def test_status_details_are_bounded(message: str) -> None:
    details = errors.details_of(BeepHostError(message))
    assert len(details.encode()) <= errors.MAX_DETAILS_BYTES
    if len(message.encode()) <= errors.MAX_DETAILS_BYTES:
        assert details == message
    else:
        assert details.endswith("...")
        assert message.startswith(details[:-3])


TOKEN = TokenCheck.of_token("s3cret")


@pytest.mark.parametrize(
    ("metadata", "problem"),
    [
        ((("authorization", "Bearer s3cret"),), None),
        ((("authorization", "bearer s3cret"),), None),
        ((("authorization", "BEARER s3cret"),), None),
        ((("user-agent", "x"), ("authorization", "Bearer s3cret")), None),
        ((), auth.MISSING),
        (None, auth.MISSING),
        ((("Authorization-x", "Bearer s3cret"),), auth.MISSING),
        ((("authorization", "Bearer s3cre"),), auth.INVALID),
        ((("authorization", "Bearer s3cret2"),), auth.INVALID),
        ((("authorization", "Bearer S3cret"),), auth.INVALID),
        ((("authorization", "Bearer  s3cret"),), auth.INVALID),
        ((("authorization", "Bearer"),), auth.INVALID),
        ((("authorization", "s3cret"),), auth.INVALID),
        ((("authorization", "Basic s3cret"),), auth.INVALID),
        ((("authorization", "Bearer ü"),), auth.INVALID),
        (
            (("authorization", "Bearer s3cret"), ("authorization", "Bearer s3cret")),
            auth.INVALID,
        ),
    ],
)
def test_check_token(metadata: object, problem: str | None) -> None:
    assert auth.check_token(TOKEN, metadata) == problem  # type: ignore[arg-type]


def test_settings_defaults_and_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BEEPHOST_RPC_BACKEND_PORT", "6000")
    monkeypatch.setenv("BEEPHOST_PIPE_BACKEND_PORT", "7000")
    settings = Settings()
    assert (settings.host, settings.port, settings.metrics_port) == (
        "127.0.0.1",
        6000,
        9465,
    )
    assert settings.max_request_bytes == 32 << 20
    assert settings.token is None
    assert settings.max_reply_bytes() > settings.max_result_bytes


@pytest.mark.parametrize("token", ["", "two words", "tab\there", "ünïcode"])
def test_unusable_tokens_are_refused(token: str) -> None:
    with pytest.raises(ValidationError):
        Settings(token=token)  # type: ignore[arg-type]


@pytest.mark.parametrize("field", ["PORT", "METRICS_PORT"])
def test_ports_are_bounded(field: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(f"BEEPHOST_RPC_BACKEND_{field}", "70000")
    with pytest.raises(ValidationError):
        Settings()


@pytest.mark.parametrize(
    ("metadata", "seconds"),
    [
        (None, None),
        ((), None),
        ((("authorization", "Bearer x"),), None),
        ((("beephost-timeout", "2.5"),), 2.5),
        ((("beephost-timeout", "1e-3"),), 0.001),
    ],
)
def test_asked_timeout(metadata: object, seconds: float | None) -> None:
    assert servicer.asked_timeout(metadata) == seconds  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value", ["", "soon", "0", "-1", "nan", "inf", "1e309", ("1", "2")]
)
def test_a_bad_asked_timeout_is_invalid_request(value: str | tuple[str, str]) -> None:
    values = value if isinstance(value, tuple) else (value,)
    metadata = [("beephost-timeout", v) for v in values]
    with pytest.raises(InvalidRequest, match="beephost-timeout"):
        servicer.asked_timeout(metadata)

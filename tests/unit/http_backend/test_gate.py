"""The request gate's sans-I/O checks: the bearer token and the JSON content type."""

import pytest

from beephost_core.tokens import TokenCheck
from beephost_http_backend.middleware import _bearer_matches, _is_plain_json

TOKEN = TokenCheck.of_token("s3cret-token")


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        (b"Bearer s3cret-token", True),
        (b"bearer s3cret-token", True),
        (b"BEARER s3cret-token", True),
        (b"Bearer  s3cret-token ", True),
        (None, False),
        (b"", False),
        (b"Bearer", False),
        (b"Bearer ", False),
        (b"s3cret-token", False),
        (b"Basic s3cret-token", False),
        (b"Bearer s3cret-toke", False),
        (b"Bearer s3cret-tokenX", False),
        (b"Bearer S3cret-token", False),
        (b"Bearers3cret-token", False),
    ],
)
def test_bearer_token(header: bytes | None, ok: bool) -> None:
    assert _bearer_matches(header, TOKEN) is ok


@pytest.mark.parametrize(
    ("content_type", "ok"),
    [
        (b"application/json", True),
        (b"application/json; charset=utf-8", True),
        (b"application/jsonx", False),
        (b"application/vnd.x+json", False),  # JSON, but left to FastAPI
        (b"text/plain", False),
    ],
)
def test_fast_lane_content_types(content_type: bytes, ok: bool) -> None:
    assert _is_plain_json(content_type) is ok

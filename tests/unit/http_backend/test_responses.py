"""Pre-encoded JSON: compact UTF-8, lone surrogates escaped, no NaN."""

import json

import pytest

from beephost_http_backend.responses import JSONBytes, encode, encode_forwarded


def test_compact_utf8() -> None:
    assert encode({"value": "ü🐍", "n": [1, 2]}) == '{"value":"ü🐍","n":[1,2]}'.encode()


def test_lone_surrogates_are_escaped() -> None:
    encoded = encode({"value": "a\udcff"})
    assert encoded == b'{"value":"a\\udcff"}'
    assert json.loads(encoded) == {"value": "a\udcff"}


def test_non_finite_floats_are_refused() -> None:
    with pytest.raises(ValueError, match="Out of range"):
        encode({"value": float("nan")})


def test_json_bytes_response() -> None:
    response = JSONBytes({"value": 2}, 201, {"X-A": "b"})
    assert response.status_code == 201
    assert bytes(response.body) == b'{"value":2}'
    assert response.headers["content-type"] == "application/json"
    assert response.headers["content-length"] == "11"
    assert response.headers["x-a"] == "b"


@pytest.mark.parametrize(
    "value",
    [
        {"value": 2},
        {"value": "ü🐍", "n": [1.5, -0.0, 1e300, 10**30]},
        {"value": "a\udcff"},
        {"value": 'tab\t quote" backslash\\ del\x7f \\u0041'},
        {"stdout": "", "value": None, "outputs": [{"data": {"text/plain": "x"}}]},
    ],
)
def test_a_forwarded_result_is_encode_s_bytes(value: dict[str, object]) -> None:
    # The worker's encoding: compact ASCII JSON.
    written = json.dumps(value, separators=(",", ":"), allow_nan=False).encode()
    assert encode_forwarded(written) == encode(value) == encode(json.loads(written))
    assert encode_forwarded(value) == encode(value)

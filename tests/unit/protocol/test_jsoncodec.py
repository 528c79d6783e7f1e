"""jsoncodec's encoder and decoder give the stdlib's answers, errors included."""

import json
import math
from typing import Any

import pytest

from beephost_protocol.jsoncodec import compact_encoder, whole_decoder

VALUES: list[Any] = [
    {"id": 7, "op": "eval", "params": {"expression": "1+1", "locals": None}},
    {"text": "é ☃ \U0001f600", "list": [1, 2.5, True, None, "x"], "nested": {"a": {}}},
    [],
    "a string",
    12345678901234567890,
    -0.0,
]


@pytest.mark.parametrize("ensure_ascii", [True, False])
@pytest.mark.parametrize("value", VALUES)
def test_encoder_matches_the_stdlib(value: Any, ensure_ascii: bool) -> None:
    stdlib = json.JSONEncoder(
        ensure_ascii=ensure_ascii, allow_nan=False, separators=(",", ":")
    )
    assert compact_encoder(ensure_ascii=ensure_ascii)(value) == stdlib.encode(value)


def test_encoder_refuses_nan_unless_allowed() -> None:
    with pytest.raises(ValueError, match="not JSON compliant"):
        compact_encoder(ensure_ascii=True)({"x": math.nan})
    allowed = compact_encoder(ensure_ascii=True, allow_nan=True)
    assert allowed({"x": math.inf}) == '{"x":Infinity}'


def test_encoder_refuses_what_json_cannot_hold() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        compact_encoder(ensure_ascii=False)({"x": object()})


def _reject(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


@pytest.mark.parametrize(
    "text",
    [
        '{"id":1,"type":"eval"}',
        '  {"id":1}',
        '{"id":1}  ',
        "\n[1,2]\n",
        '{"id":1}\n',
        '{"id":1}\n\n',
        '{"id":1}\r\n',
        "3\n",
        "3",
        '"s"',
    ],
)
def test_decoder_matches_the_stdlib(text: str) -> None:
    strict = json.JSONDecoder(parse_constant=_reject)
    assert whole_decoder(strict)(text) == strict.decode(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        '{"id":1} x',
        '{"id":1}{"id":2}',
        '{"id":1}\n{"id":2}\n',
        '{"id":1}x\n',
        "{",
        "NaN",
        '{"x":Infinity}',
    ],
)
def test_decoder_raises_the_stdlib_errors(text: str) -> None:
    strict = json.JSONDecoder(parse_constant=_reject)
    with pytest.raises(ValueError, match=r"\w") as ours:
        whole_decoder(strict)(text)
    with pytest.raises(ValueError, match=r"\w") as theirs:
        strict.decode(text)
    assert str(ours.value) == str(theirs.value)

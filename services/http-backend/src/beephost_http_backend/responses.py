"""Pre-encoded JSON responses: results go out without response-model validation.

The core's results are already JSON-ready dicts of the documented shapes (the OpenAPI
keeps them through ``response_model=``), so validating them again per request would only
cost time on the hottest routes.
"""

import json
from typing import Any

from starlette.responses import Response, StreamingResponse

from beephost_protocol.jsoncodec import compact_encoder

# Non-finite floats never reach here (values tag them); refuse rather than emit non-JSON.
_encode = compact_encoder(ensure_ascii=False)
_encode_ascii = compact_encoder(ensure_ascii=True)


def encode(content: Any) -> bytes:
    """Compact UTF-8 JSON; lone surrogates from the worker fall back to \\u escapes."""
    text = _encode(content)
    try:
        return text.encode()
    except UnicodeEncodeError:
        return _encode_ascii(content).encode()


def encode_forwarded(result: dict[str, Any] | bytes) -> bytes:
    """``encode`` of a result the core may hand over as the worker wrote it (``raw``).

    The worker writes compact ASCII JSON, the same bytes as ``encode``'s except where
    it escapes a character (``\\u``: beyond ASCII, which ``encode`` writes as UTF-8, or
    a lone surrogate): only then is the text decoded and encoded again.
    """
    if not isinstance(result, bytes):
        return encode(result)
    if b"\\u" not in result:
        return result
    return encode(json.loads(result))


class JSONBytes(Response):
    """A JSON response from a result dict, encoded once."""

    media_type = "application/json"

    def __init__(
        self,
        content: Any,
        status_code: int = 200,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(encode(content), status_code, headers)


class NDJSONResponse(StreamingResponse):
    """Newline-delimited JSON, one object per line."""

    media_type = "application/x-ndjson"

"""The pipe transports: NDJSON over a Unix socket (docs/protocol/pipe.md).

:class:`AsyncPipeTransport` is written in ``_async/pipe.py``; :class:`PipeTransport`
is generated from it (``packages/client/scripts/unasync.py``). Below them, the
connections (``_pipeio``) are hand-written I/O, and the framing and the reply
classification (``_pipe_codec``, re-exported here) are pure functions, unit-tested
with bytes and dicts.
"""

from beephost_client._transports._async.pipe import AsyncPipeTransport
from beephost_client._transports._pipe_codec import (
    DEFAULT_MAX_FRAME,
    MAX_REPLY_LINE,
    PROTOCOL_MAJOR,
    announced_payload,
    check_hello,
    classify,
    hello_line,
    parse_line,
    request_frame,
)
from beephost_client._transports._sync.pipe import PipeTransport

__all__ = [
    "DEFAULT_MAX_FRAME",
    "MAX_REPLY_LINE",
    "PROTOCOL_MAJOR",
    "AsyncPipeTransport",
    "PipeTransport",
    "announced_payload",
    "check_hello",
    "classify",
    "hello_line",
    "parse_line",
    "request_frame",
]

"""`beephost-rpc-backend healthcheck`: exit 0 when the standard health Check says SERVING.

Docker runs it every 5 s, inside the backend's CPU and memory limits, so it is stdlib
only: importing grpc costs a third of a second of CPU and ~30 MiB. It speaks the few
frames one unary call needs itself: HTTP/2 over cleartext with prior knowledge
(RFC 9113), headers as HPACK literals without Huffman coding (RFC 7541, 6.2.2), and the
gRPC length-prefixed message (gRPC over HTTP/2). ``tests/unit/test_healthchecks.py``
keeps the defaults and variable names equal to Settings', and tests/integration probes
real servers.
"""

import os
import socket
import time
from collections.abc import Mapping

from beephost_core import activity

ENV_PREFIX = "BEEPHOST_RPC_BACKEND_"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 50051
METHOD = b"/grpc.health.v1.Health/Check"
STATUS_NAMES = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}
SERVING = 1

# A server bound to every interface is probed over loopback.
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "[::]": "::1", "": "127.0.0.1"}

_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_DATA, _HEADERS, _RST_STREAM, _SETTINGS, _PING, _GOAWAY = 0x0, 0x1, 0x3, 0x4, 0x6, 0x7
_END_STREAM, _ACK, _END_HEADERS = 0x1, 0x1, 0x4
_STREAM = 1  # the one request's stream (client streams are odd)
_MAX_FRAME = 1 << 14  # SETTINGS_MAX_FRAME_SIZE's default: what a server may send us


def target(environ: Mapping[str, str] = os.environ) -> tuple[str, int]:
    """The (host, port) the server listens on, as Settings would read them."""
    # Settings match variable names case-insensitively (beephost_core.envsettings).
    values = {k.upper(): v for k, v in environ.items()}
    host = values.get(f"{ENV_PREFIX}HOST", DEFAULT_HOST)
    port = int(values.get(f"{ENV_PREFIX}PORT", DEFAULT_PORT))
    return host, port


def check(
    host: str, port: int, timeout: float = 3.0, service: str = ""
) -> tuple[bool, str]:
    """Ask the health of ``service`` ("": the whole server); return (healthy, reason)."""
    host = _WILDCARDS.get(host, host).strip("[]")
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(check_request(service))
            status = _read_status(sock, time.monotonic() + timeout)
    except (OSError, ValueError) as exc:
        # Worded like grpc's own client: the status a call would have failed with.
        return False, f"UNAVAILABLE: {type(exc).__name__}: {exc}"
    return status == SERVING, STATUS_NAMES.get(status, f"status {status}")


def check_request(service: str = "") -> bytes:
    """Preface, SETTINGS, and one Check call on stream 1 (HEADERS, then DATA)."""
    headers = b"".join(
        [
            b"\x83",  # :method POST (static table index 3)
            b"\x86",  # :scheme http (index 6)
            _literal(b":path", METHOD),
            _literal(b":authority", b"localhost"),
            _literal(b"content-type", b"application/grpc"),
            _literal(b"te", b"trailers"),
        ]
    )
    name = service.encode()
    message = b"\x0a" + _varint(len(name)) + name if name else b""  # field 1: service
    body = b"\x00" + len(message).to_bytes(4, "big") + message  # not compressed
    return (
        _PREFACE
        + _frame(_SETTINGS, 0, 0, b"")
        + _frame(_HEADERS, _END_HEADERS, _STREAM, headers)
        + _frame(_DATA, _END_STREAM, _STREAM, body)
    )


def health_status(body: bytes) -> int:
    """The status of a gRPC-framed HealthCheckResponse (0, UNKNOWN, when absent)."""
    if len(body) < 5 or body[0] != 0:
        raise ValueError("not an uncompressed gRPC message")
    length = int.from_bytes(body[1:5], "big")
    message = body[5 : 5 + length]
    if len(message) != length:
        raise ValueError("a truncated gRPC message")
    status, at = 0, 0
    while at < len(message):
        key, at = _read_varint(message, at)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, at = _read_varint(message, at)
            if field == 1:
                status = value
        elif wire == 2:
            size, at = _read_varint(message, at)
            at += size
        elif wire in (1, 5):
            at += 8 if wire == 1 else 4
        else:
            raise ValueError(f"protobuf wire type {wire} in a health response")
    return status


def _read_status(sock: socket.socket, deadline: float) -> int:
    """Read frames until stream 1 ends; answer the server's SETTINGS and PINGs."""
    body = b""
    while True:
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        header = _read_exactly(sock, 9)
        length = int.from_bytes(header[:3], "big")
        kind, flags = header[3], header[4]
        stream = int.from_bytes(header[5:9], "big") & 0x7FFFFFFF
        if length > _MAX_FRAME:
            raise ValueError(f"a {length}-byte frame exceeds the default maximum")
        payload = _read_exactly(sock, length)
        if kind == _SETTINGS and not flags & _ACK:
            sock.sendall(_frame(_SETTINGS, _ACK, 0, b""))
        elif kind == _PING and not flags & _ACK:
            sock.sendall(_frame(_PING, _ACK, 0, payload))
        elif kind == _GOAWAY:
            raise ValueError("the server closed the connection (GOAWAY)")
        elif stream == _STREAM and kind == _RST_STREAM:
            raise ValueError("the server reset the call (RST_STREAM)")
        elif stream == _STREAM and kind == _DATA:
            body += _unpadded(payload, flags)
        if stream == _STREAM and kind in (_DATA, _HEADERS) and flags & _END_STREAM:
            break
    if not body:
        # The trailers carry grpc-status; an error status comes without a message.
        raise ValueError("the call ended without a health response")
    return health_status(body)


def _frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return (
        len(payload).to_bytes(3, "big")
        + bytes([kind, flags])
        + stream.to_bytes(4, "big")
        + payload
    )


def _literal(name: bytes, value: bytes) -> bytes:
    """A header field as a literal without indexing, new name, no Huffman coding."""
    return b"\x00" + _hpack_string(name) + _hpack_string(value)


def _hpack_string(value: bytes) -> bytes:
    # A string's length is an integer with a 7-bit prefix (RFC 7541, 5.1); H bit 0.
    length = len(value)
    if length < 127:
        return bytes([length]) + value
    encoded, length = bytearray([127]), length - 127
    while length >= 128:
        encoded.append(length % 128 + 128)
        length //= 128
    encoded.append(length)
    return bytes(encoded) + value


def _unpadded(payload: bytes, flags: int) -> bytes:
    if flags & 0x8:  # PADDED: a pad length byte, then that many zeros at the end
        pad = payload[0]
        return payload[1 : len(payload) - pad]
    return payload


def _varint(value: int) -> bytes:
    encoded = bytearray()
    while value >= 0x80:
        encoded.append(value & 0x7F | 0x80)
        value >>= 7
    encoded.append(value)
    return bytes(encoded)


def _read_varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data) or shift > 63:
            raise ValueError("a malformed protobuf varint")
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at, shift = at + 1, shift + 7
        if not byte & 0x80:
            return value, at


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ValueError("the server closed the connection")
        data += chunk
    return data


def idle_note(environ: Mapping[str, str] = os.environ) -> str:
    """`` idle=N`` for the health check's output (``beephost_core.activity``)."""
    return activity.idle_note(ENV_PREFIX, environ)

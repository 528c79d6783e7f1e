"""File bytes on gRPC's wire without protobuf's runtime: the messages that carry a
chunk's bytes and nothing else, written and read by hand.

Every chunk of a download after the first (``FileChunk``) and every data message of an
upload (``UploadFileRequest``) holds its bytes in field 2 alone, a form protobuf's wire
format fixes: the tag 0x12 (field 2, length-delimited), the length as a varint, the
bytes. The runtime (upb) copies the bytes into its arena when such a message is made
or parsed, again when it is serialized, and again when ``data`` is read: three copies
of each MiB where these functions make one (a third of the rpc server's CPU in a
download, by py-spy). Any other message (a first chunk with its info, an upload's
header or end) goes through protobuf as before, and so does anything these functions
do not recognise: the wire stays protobuf's.
"""

from collections.abc import Callable
from typing import Any, Protocol

#: Field 2, wire type 2 (length-delimited): ``data`` in both messages.
DATA_TAG = 0x12
_MAX_VARINT_BYTES = 10


class _Serializable(Protocol):
    def SerializeToString(self) -> bytes: ...


def encode_data(data: bytes) -> bytes:
    """The wire form of a message whose one field is ``data`` (field 2)."""
    return _data_header(len(data)) + data


def decode_data(raw: bytes) -> bytes | None:
    """The bytes of a message that holds field 2 and nothing else; None for any other
    message (to be parsed whole by protobuf)."""
    if not raw or raw[0] != DATA_TAG:
        return None
    length, start = 0, 1
    for shift in range(0, 7 * _MAX_VARINT_BYTES, 7):
        if start >= len(raw):
            return None
        byte = raw[start]
        start += 1
        length |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
    else:
        return None
    if start + length != len(raw):
        return None  # more fields after it (or fewer bytes): protobuf's to parse
    return raw[start:]


def data_or(parse: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    """A deserializer: the bytes of a data-only message (:func:`decode_data`), any
    other message as ``parse`` reads it."""

    def deserialize(raw: bytes) -> Any:
        data = decode_data(raw)
        return parse(raw) if data is None else data

    return deserialize


def serialize(message: bytes | _Serializable) -> bytes:
    """A response serializer for streams that send some messages encoded already
    (by :func:`encode_data`) and others as protobuf messages."""
    if isinstance(message, bytes):
        return message
    return message.SerializeToString()


def _data_header(length: int) -> bytes:
    header = bytearray((DATA_TAG,))
    while length > 0x7F:
        header.append(length & 0x7F | 0x80)
        length >>= 7
    header.append(length)
    return bytes(header)

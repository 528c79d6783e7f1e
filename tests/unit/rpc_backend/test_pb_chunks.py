"""Data-only chunks written and read by hand (pb_chunks.py): byte for byte protobuf's
wire form both ways, and anything else left to protobuf."""

import pytest

from beephost_pb.exec.v1 import exec_pb2 as pb
from beephost_protocol import files, pb_chunks, pb_files

# Around each varint length boundary, and a chunk of the size transfers use.
SIZES = [1, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152, (1 << 20) + 5]


def data(size: int) -> bytes:
    return bytes(range(256)) * (size // 256) + bytes(size % 256)


@pytest.mark.parametrize("size", SIZES)
def test_encoded_as_protobuf_encodes_both_messages(size: int) -> None:
    chunk = data(size)
    encoded = pb_chunks.encode_data(chunk)
    assert encoded == pb.FileChunk(data=chunk).SerializeToString()
    assert encoded == pb.UploadFileRequest(data=chunk).SerializeToString()


@pytest.mark.parametrize("size", SIZES)
def test_protobufs_serializations_are_read_back(size: int) -> None:
    chunk = data(size)
    for message in (pb.FileChunk(data=chunk), pb.UploadFileRequest(data=chunk)):
        assert pb_chunks.decode_data(message.SerializeToString()) == chunk


def test_an_empty_chunk_both_ways() -> None:
    encoded = pb_chunks.encode_data(b"")
    # Set in a oneof, an empty ``data`` is sent; protobuf reads the form back.
    assert encoded == pb.UploadFileRequest(data=b"").SerializeToString()
    assert pb.FileChunk.FromString(encoded).data == b""
    assert pb_chunks.decode_data(encoded) == b""


OTHER_MESSAGES = {
    "a first chunk, with its info": pb_files.first_chunk(
        files.FileInfo(path="a", name="a", type="file", size=3, mtime=1.0, mode=0o644),
        b"abc",
    ).SerializeToString(),
    "an upload's header": pb_files.upload_request("a", True, 3).SerializeToString(),
    "an upload's end": pb_files.end_request().SerializeToString(),
    "an empty message (a FileChunk with nothing set)": b"",
    "data, then another field": pb_chunks.encode_data(b"abc") + b"\x18\x01",
    "data given twice": pb_chunks.encode_data(b"a") + pb_chunks.encode_data(b"b"),
    "a length past the end": b"\x12\x05abc",
    "a length cut short": b"\x12\x80",
    "a varint of eleven bytes": b"\x12" + b"\x80" * 10 + b"\x01",
}


@pytest.mark.parametrize("raw", OTHER_MESSAGES.values(), ids=OTHER_MESSAGES.keys())
def test_anything_else_is_left_to_protobuf(raw: bytes) -> None:
    assert pb_chunks.decode_data(raw) is None
    parsed: list[bytes] = []

    def parse(raw: bytes) -> str:
        parsed.append(raw)
        return "parsed"

    assert pb_chunks.data_or(parse)(raw) == "parsed"
    assert parsed == [raw]


def test_data_or_returns_a_data_only_messages_bytes() -> None:
    deserialize = pb_chunks.data_or(lambda raw: pytest.fail("parsed by protobuf"))
    assert deserialize(pb.FileChunk(data=b"xyz").SerializeToString()) == b"xyz"


def test_serialize_passes_encoded_chunks_and_serializes_messages() -> None:
    encoded = pb_chunks.encode_data(b"xyz")
    assert pb_chunks.serialize(encoded) is encoded
    end = pb_files.end_request()
    assert pb_chunks.serialize(end) == end.SerializeToString()


def test_the_download_spec_reads_data_chunks_by_hand() -> None:
    spec = pb_files.SPECS["DownloadFile"]
    assert spec.parse_reply(pb_chunks.encode_data(b"xyz")) == b"xyz"
    first = OTHER_MESSAGES["a first chunk, with its info"]
    assert spec.parse_reply(first) == pb.FileChunk.FromString(first)
    assert pb_files.SPECS["StatFile"].parse_reply == pb.FileInfo.FromString

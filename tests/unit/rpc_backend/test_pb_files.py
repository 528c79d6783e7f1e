"""The file RPCs' protobuf conversion (pb_files.py): commands and results both ways,
and the streaming messages' checks."""

from typing import Any

import pytest

from beephost_pb.exec.v1 import exec_pb2 as pb
from beephost_protocol import Command, files, pb_files
from beephost_protocol.errors import InvalidRequest

#: The server's decoder of each unary file RPC (what the servicer registers).
DECODERS: dict[str, Any] = {
    "StatFile": pb_files.stat_file_command,
    "ListFiles": pb_files.list_files_command,
    "MakeDirectory": pb_files.make_directory_command,
    "RemoveFile": pb_files.remove_file_command,
    "RenameFile": pb_files.rename_file_command,
    "GetWorkspaceUsage": pb_files.usage_command,
}
INFO: dict[str, Any] = {
    "path": "data/in.csv",
    "name": "in.csv",
    "type": "file",
    "size": 12,
    "mtime": 1763892000.5,
    "mode": 0o644,
}


def wire(message: Any) -> Any:
    """The message as the other side parses it."""
    return type(message).FromString(message.SerializeToString())


@pytest.mark.parametrize(
    "command",
    [
        files.FileStat(path="data/in.csv"),
        files.FileList(path="data"),
        files.FileList(),
        files.FileMkdir(path="a/b", parents=False),
        files.FileMkdir(path="a/b"),
        files.FileRemove(path="a", recursive=True),
        files.FileRename(source="a", destination="b", overwrite=True),
        files.WorkspaceUsage(),
    ],
    ids=lambda c: f"{c.COMMAND}:{c.model_dump()}",
)
def test_file_commands_survive_the_trip(command: Command) -> None:
    spec, request = pb_files.encode_file_command(command)
    assert not spec.streaming
    assert DECODERS[spec.method](wire(request)) == command


@pytest.mark.parametrize(
    ("method", "result", "reply"),
    [
        ("StatFile", INFO, pb_files.file_info_reply),
        (
            "ListFiles",
            {
                "path": "data",
                "entries": [INFO, {**INFO, "name": "x", "path": "data/x"}],
            },
            pb_files.file_listing_reply,
        ),
        ("RemoveFile", {"path": "a", "removed": 3}, pb_files.file_removed_reply),
        (
            "GetWorkspaceUsage",
            {"root": "/workspace", "used": 10, "quota": 1 << 30},
            pb_files.usage_reply,
        ),
    ],
)
def test_file_results_survive_the_trip(
    method: str, result: dict[str, Any], reply: Any
) -> None:
    decoded = pb_files.decode_file_reply(pb_files.SPECS[method], wire(reply(result)))
    assert decoded == result


def test_the_first_chunk_carries_the_info() -> None:
    chunk = wire(pb_files.first_chunk(files.FileInfo(**INFO), b"abc"))
    assert pb_files.file_info(chunk.info) == INFO
    assert chunk.data == b"abc"


def test_streamed_commands_have_no_unary_rpc() -> None:
    with pytest.raises(InvalidRequest, match="UploadFile and DownloadFile"):
        pb_files.encode_file_command(files.UploadOpen(path="a"))


def test_an_upload_header_opens_with_defaults() -> None:
    opening, digest = pb_files.upload_header(
        wire(pb_files.upload_request("a.bin", overwrite=True, size=None))
    )
    assert opening == files.UploadOpen(path="a.bin", overwrite=True, size=None)
    assert digest is None
    sized = pb.UploadFileRequest(
        header=pb.UploadHeader(path="a", overwrite=False, size=5, sha256="ab" * 32)
    )
    opening, digest = pb_files.upload_header(wire(sized))
    assert (opening.overwrite, opening.size, digest) == (False, 5, "ab" * 32)


@pytest.mark.parametrize(
    ("first", "message"),
    [
        (None, "first message must be its header"),
        (pb.UploadFileRequest(data=b"x"), "first message must be its header"),
        (pb.UploadFileRequest(header=pb.UploadHeader(path="")), "path"),
        (pb.UploadFileRequest(header=pb.UploadHeader(path="a\x00b")), "NUL"),
        (
            pb.UploadFileRequest(header=pb.UploadHeader(path="a", size=-1)),
            "size",
        ),
        (
            pb.UploadFileRequest(header=pb.UploadHeader(path="a", sha256="xyz")),
            "sha256",
        ),
    ],
)
def test_a_bad_upload_header_is_refused(first: Any, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        pb_files.upload_header(first)


def test_upload_data_takes_chunks_only() -> None:
    assert pb_files.upload_data(pb_files.data_request(b"abc")) == b"abc"
    assert pb_files.upload_data(wire(pb_files.end_request())) is None
    with pytest.raises(InvalidRequest, match="one header"):
        pb_files.upload_data(pb_files.upload_request("a", True, None))
    with pytest.raises(InvalidRequest, match="at most"):
        pb_files.upload_data(pb_files.data_request(b"x" * (files.MAX_CHUNK_BYTES + 1)))


def test_download_ranges() -> None:
    assert pb_files.download_range(wire(pb_files.download_request("a", 5, None))) == (
        "a",
        5,
        None,
    )
    assert pb_files.download_range(wire(pb_files.download_request("a", 0, 7))) == (
        "a",
        0,
        7,
    )
    with pytest.raises(InvalidRequest, match=">= 0"):
        pb_files.download_range(pb.DownloadFileRequest(path="a", offset=-1))
    with pytest.raises(InvalidRequest):
        pb_files.download_range(pb.DownloadFileRequest(path=""))

"""The workspace's files over gRPC: the file RPCs' messages to commands and back.

The unary RPCs carry the file commands one to one (the messages' fields are the
models'); ``UploadFile`` and ``DownloadFile`` stream a file's bytes, so they have no
command: the servers use the workspace directly and these functions only shape their
messages. pb_codec.py holds the rest of the protobuf conversion.
"""

from typing import Any

from google.protobuf.message import Message

from beephost_pb.exec.v1 import exec_pb2 as pb
from beephost_protocol import Command, files
from beephost_protocol.errors import InvalidRequest
from beephost_protocol.pb_codec import SERVICE_NAME, RpcSpec, validated

# -- requests to commands (server side); every decoder takes (request, timeout) ----------


def stat_file_command(
    request: pb.FilePath, timeout: float | None = None
) -> files.FileStat:
    return validated(files.FileStat, "StatFile", path=request.path)


def list_files_command(
    request: pb.FilePath, timeout: float | None = None
) -> files.FileList:
    return validated(files.FileList, "ListFiles", path=request.path or ".")


def make_directory_command(
    request: pb.MakeDirectoryRequest, timeout: float | None = None
) -> files.FileMkdir:
    parents = request.parents if request.HasField("parents") else True
    return validated(
        files.FileMkdir, "MakeDirectory", path=request.path, parents=parents
    )


def remove_file_command(
    request: pb.RemoveFileRequest, timeout: float | None = None
) -> files.FileRemove:
    return validated(
        files.FileRemove, "RemoveFile", path=request.path, recursive=request.recursive
    )


def rename_file_command(
    request: pb.RenameFileRequest, timeout: float | None = None
) -> files.FileRename:
    return validated(
        files.FileRename,
        "RenameFile",
        source=request.source,
        destination=request.destination,
        overwrite=request.overwrite,
    )


def usage_command(
    request: pb.WorkspaceUsageRequest, timeout: float | None = None
) -> files.WorkspaceUsage:
    return files.WorkspaceUsage()


def upload_header(request: Any) -> tuple[files.UploadOpen, str | None]:
    """The upload a stream's first message opens, and the SHA-256 its end must match.

    Raises:
        InvalidRequest: The first message is not a header, or a field is invalid.
    """
    if (
        not isinstance(request, pb.UploadFileRequest)
        or request.WhichOneof("part") != "header"
    ):
        raise InvalidRequest("UploadFile's first message must be its header")
    header = request.header
    opening = validated(
        files.UploadOpen,
        "UploadFile",
        path=header.path,
        overwrite=header.overwrite if header.HasField("overwrite") else True,
        size=header.size if header.HasField("size") else None,
    )
    digest = header.sha256 or None
    if digest is not None:
        validated(files.UploadCommit, "UploadFile", upload="-", sha256=digest)
    return opening, digest


def upload_data(request: Any) -> bytes | None:
    """The bytes of a stream's later message (a data message, or the bytes
    ``pb_chunks.decode_data`` found in one); None for its ``end``.

    Raises:
        InvalidRequest: A second header, or a chunk over ``MAX_CHUNK_BYTES``.
    """
    if isinstance(request, bytes):
        data = request
    elif not isinstance(request, pb.UploadFileRequest) or request.WhichOneof(
        "part"
    ) not in ("data", "end"):
        raise InvalidRequest("UploadFile takes one header, data messages, then end")
    elif request.WhichOneof("part") == "end":
        return None
    else:
        data = request.data  # each access copies the bytes (upb): once
    if len(data) > files.MAX_CHUNK_BYTES:
        raise InvalidRequest(
            f"a chunk of {len(data)} bytes; at most {files.MAX_CHUNK_BYTES}"
        )
    return data


def download_range(request: pb.DownloadFileRequest) -> tuple[str, int, int | None]:
    """The path, offset and length (None: to the end) a download asks for.

    Raises:
        InvalidRequest: A negative offset or length, or an invalid path.
    """
    length = request.length if request.HasField("length") else None
    if request.offset < 0 or (length is not None and length < 0):
        raise InvalidRequest("offset and length must be >= 0")
    validated(files.FileStat, "DownloadFile", path=request.path)
    return request.path, request.offset, length


# -- results to replies (server side) -----------------------------------------------------


def file_info_reply(result: dict[str, Any]) -> pb.FileInfo:
    return pb.FileInfo(**result)


def file_listing_reply(result: dict[str, Any]) -> pb.FileListing:
    return pb.FileListing(
        path=result["path"],
        entries=[pb.FileInfo(**entry) for entry in result["entries"]],
    )


def file_removed_reply(result: dict[str, Any]) -> pb.RemoveFileReply:
    return pb.RemoveFileReply(**result)


def usage_reply(result: dict[str, Any]) -> pb.WorkspaceUsageReply:
    return pb.WorkspaceUsageReply(**result)


def first_chunk(info: files.FileInfo, data: bytes) -> pb.FileChunk:
    return pb.FileChunk(info=pb.FileInfo(**info.model_dump()), data=data)


# -- commands to requests, replies to results (client side) ------------------------------

SPECS: dict[str, RpcSpec] = {
    spec.method: spec
    for spec in (
        RpcSpec("StatFile", pb.FilePath, pb.FileInfo),
        RpcSpec("ListFiles", pb.FilePath, pb.FileListing),
        RpcSpec("MakeDirectory", pb.MakeDirectoryRequest, pb.FileInfo),
        RpcSpec("RemoveFile", pb.RemoveFileRequest, pb.RemoveFileReply),
        RpcSpec("RenameFile", pb.RenameFileRequest, pb.FileInfo),
        RpcSpec("GetWorkspaceUsage", pb.WorkspaceUsageRequest, pb.WorkspaceUsageReply),
        RpcSpec(
            "DownloadFile",
            pb.DownloadFileRequest,
            pb.FileChunk,
            streaming=True,
            data_chunks=True,
        ),
    )
}
#: The client-streaming upload (RpcSpec describes unary and server-streaming calls):
#: its method path, request and reply message types.
UPLOAD_PATH = f"/{SERVICE_NAME}/UploadFile"
UPLOAD_REQUEST = pb.UploadFileRequest
UPLOAD_REPLY = pb.FileInfo


def encode_file_command(command: Command) -> tuple[RpcSpec, Message]:
    """The unary RPC of a file metadata command, and its request.

    Raises:
        InvalidRequest: A file command that streams instead (uploads, reads).
    """
    match command:
        case files.FileStat():
            return SPECS["StatFile"], pb.FilePath(path=command.path)
        case files.FileList():
            return SPECS["ListFiles"], pb.FilePath(path=command.path)
        case files.FileMkdir():
            return SPECS["MakeDirectory"], pb.MakeDirectoryRequest(
                path=command.path, parents=command.parents
            )
        case files.FileRemove():
            return SPECS["RemoveFile"], pb.RemoveFileRequest(
                path=command.path, recursive=command.recursive
            )
        case files.FileRename():
            return SPECS["RenameFile"], pb.RenameFileRequest(
                source=command.source,
                destination=command.destination,
                overwrite=command.overwrite,
            )
        case files.WorkspaceUsage():
            return SPECS["GetWorkspaceUsage"], pb.WorkspaceUsageRequest()
    raise InvalidRequest(
        f"command {command.COMMAND!r} has no RPC: files stream on UploadFile and "
        "DownloadFile"
    )


def file_info(message: pb.FileInfo) -> dict[str, Any]:
    return {
        "path": message.path,
        "name": message.name,
        "type": message.type,
        "size": message.size,
        "mtime": message.mtime,
        "mode": message.mode,
    }


def decode_file_reply(spec: RpcSpec, reply: Any) -> dict[str, Any]:
    """The result dict of a file RPC's reply, shaped as its command's result model."""
    match reply:
        case pb.FileInfo():
            return file_info(reply)
        case pb.FileListing():
            return {
                "path": reply.path,
                "entries": [file_info(e) for e in reply.entries],
            }
        case pb.RemoveFileReply():
            return {"path": reply.path, "removed": reply.removed}
        case pb.WorkspaceUsageReply():
            return {"root": reply.root, "used": reply.used, "quota": reply.quota}
    raise TypeError(f"{spec.method} does not reply with {type(reply).__name__}")


def upload_request(
    path: str, overwrite: bool, size: int | None
) -> pb.UploadFileRequest:
    """The first message of an upload: its header (``size`` None: not known)."""
    # Protobuf takes a None field as one not given: the optional ``size`` stays unset.
    header = pb.UploadHeader(path=path, overwrite=overwrite, size=size)
    return pb.UploadFileRequest(header=header)


def data_request(data: bytes) -> pb.UploadFileRequest:
    return pb.UploadFileRequest(data=data)


def end_request() -> pb.UploadFileRequest:
    """An upload's last message: the file is whole."""
    return pb.UploadFileRequest(end=True)


def download_request(
    path: str, offset: int, length: int | None
) -> pb.DownloadFileRequest:
    """A download of ``length`` bytes from ``offset``; None (left unset): to the end."""
    return pb.DownloadFileRequest(path=path, offset=offset, length=length)

"""What the workspace's modules share: reserved names, open flags, and a path's info."""

import os
import stat

from beephost_protocol.files import FileInfo, FileType

#: Uploads in progress are written under this prefix, in the target's directory.
UPLOAD_PREFIX = ".beephost-upload-"
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def kind(mode: int) -> FileType:
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISLNK(mode):
        return "symlink"
    return "other"


def file_info(relative: str, st: os.stat_result) -> FileInfo:
    return FileInfo(
        path=relative,
        name=relative.rsplit("/", 1)[-1],
        type=kind(st.st_mode),
        size=st.st_size,
        mtime=st.st_mtime,
        mode=stat.S_IMODE(st.st_mode),
    )


def join(parts: list[str]) -> str:
    return "/".join(parts) or "."

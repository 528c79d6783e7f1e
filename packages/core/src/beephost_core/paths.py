"""What the workspace's modules share: reserved names, open flags, a path's info, and
moving a file by directory descriptors."""

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


def move_file(
    src_dir_fd: int, src: str, dst_dir_fd: int, dst: str, *, replace: bool
) -> None:
    """Move a file (not a directory) between open directories, replacing one at
    ``dst`` only if ``replace``.

    Raises:
        FileExistsError: Something is at ``dst`` and ``replace`` is false.
    """
    if replace:
        os.rename(src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd)
        return
    # link() never replaces: the destination appears only if it was free.
    os.link(
        src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd, follow_symlinks=False
    )
    os.unlink(src, dir_fd=src_dir_fd)

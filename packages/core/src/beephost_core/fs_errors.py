"""The operating system's refusals as the protocol's typed errors.

A file operation on the workspace may meet what user code left there (a file it made
unreadable, a name too long, a disk that is full): each is the client's error or a
state of the sandbox, never an internal error of the server.
"""

import errno
import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from beephost_protocol.errors import (
    BeepHostError,
    Conflict,
    InvalidRequest,
    NotFound,
    QuotaExceeded,
    Unavailable,
)

P = ParamSpec("P")
T = TypeVar("T")

_INVALID = {
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENAMETOOLONG: "name too long",
    errno.ELOOP: "a symlink (never followed)",
    errno.ENOTDIR: "not a directory",
    errno.EISDIR: "a directory",
    errno.EXDEV: "crosses a file system boundary",
    errno.EMLINK: "too many links",
    errno.EINVAL: "invalid argument",
    errno.EBUSY: "busy",
}


def typed(error: OSError) -> BeepHostError:
    """The protocol error for an OSError met on the workspace."""
    reason = error.strerror or str(error)
    if error.errno == errno.ENOENT:
        return NotFound(f"no such file or directory: {reason}")
    if error.errno in (errno.EEXIST, errno.ENOTEMPTY):
        return Conflict(f"in the way: {reason}")
    if error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return QuotaExceeded(f"the disk refused it: {reason}", {})
    if error.errno == errno.EROFS:
        return Unavailable("the workspace is read-only (no volume is mounted on it)")
    return InvalidRequest(
        _INVALID.get(error.errno or 0, reason), {"errno": error.errno}
    )


def os_errors_typed(function: Callable[P, T]) -> Callable[P, T]:
    """Decorate a workspace operation: an OSError leaves it as a protocol error."""

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return function(*args, **kwargs)
        except OSError as exc:
            raise typed(exc) from exc

    return wrapper

"""Unix sockets a server listens on: a stale file replaced, a live one refused."""

import logging
import socket
import stat
from pathlib import Path

logger = logging.getLogger(__name__)

#: A server socket's mode: its owner and its directory's group (the controller's).
SOCKET_MODE = 0o660


def prepare_socket_path(path: Path) -> None:
    """Make ``path``'s directory, and remove a stale socket a dead server left there.

    Raises:
        RuntimeError: ``path`` is not a socket, or a server still listens on it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise RuntimeError(f"{path} exists and is not a socket; refusing to replace it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        path.unlink(missing_ok=True)  # stale: left by a server that died
        logger.info("replaced stale socket %s", path)
        return
    finally:
        probe.close()
    raise RuntimeError(f"another server is listening on {path}")


def bind_unix(path: Path, mode: int = SOCKET_MODE) -> socket.socket:
    """A listening Unix socket at ``path`` with permission bits ``mode`` (its
    directory's group shares it: the controller reaches the server there)."""
    prepare_socket_path(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        path.chmod(mode)
        sock.listen(2048)
    except BaseException:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock

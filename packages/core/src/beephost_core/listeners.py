"""Sockets a server listens on: TCP, and Unix ones (a stale file replaced, a live one
refused)."""

import logging
import socket
import stat
from collections.abc import Callable
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


def bind_tcp(host: str, port: int) -> socket.socket:
    """A listening TCP socket; port 0 picks a free one (read it back from the socket)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    return _listening(sock, lambda: sock.bind((host, port)))


def bind_unix(path: Path, mode: int = SOCKET_MODE) -> socket.socket:
    """A listening Unix socket at ``path`` with permission bits ``mode`` (its
    directory's group shares it: the controller reaches the server there)."""
    prepare_socket_path(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)

    def bind() -> None:
        sock.bind(str(path))
        path.chmod(mode)

    return _listening(sock, bind)


def _listening(sock: socket.socket, bind: Callable[[], None]) -> socket.socket:
    """``sock`` bound by ``bind`` and listening, inheritable (a server process may
    hand it on); closed if either fails."""
    try:
        bind()
        sock.listen(2048)
    except BaseException:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock

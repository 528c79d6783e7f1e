"""A free loopback TCP port, for every test tier."""

import socket


def free_port() -> int:
    """A loopback port nothing listens on now: bound once by the kernel's choice, then
    closed (a server started next may take it; a URL on it is refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port

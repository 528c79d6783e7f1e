"""RPyC classic (SlaveService) on a Unix socket, the reference the pipe backend is held to.

Usage: python bench/_rpyc_server.py SOCKET_PATH
Clients: ``rpyc.classic.unix_connect(path).eval("1+1")``: one hop, evaluated in-process.
"""

import contextlib
import os
import signal
import sys

import rpyc
from rpyc.utils.server import ThreadedServer


def main() -> None:
    path = sys.argv[1]
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    server = ThreadedServer(rpyc.SlaveService, socket_path=path)
    try:
        server.start()
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()

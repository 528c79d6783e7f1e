"""RPyC classic (SlaveService) on a Unix socket, the reference the pipe backend is held to.

Usage: python bench/_rpyc_server.py SOCKET_PATH
Clients: ``rpyc.classic.unix_connect(path).eval("1+1")``: one hop, evaluated in-process.
"""

import contextlib
import sys
from pathlib import Path

import rpyc
from rpyc.utils.server import ThreadedServer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench.* importable
from bench._socket_file import socket_file


def main() -> None:
    path = sys.argv[1]
    with socket_file(path):
        ThreadedServer(rpyc.SlaveService, socket_path=path).start()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()

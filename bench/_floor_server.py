"""The FLOOR: the fastest plain Python eval server over a Unix socket, one hop, no framework.

Usage: python bench/_floor_server.py SOCKET_PATH

Same wire shape as the pipe backend (newline-delimited JSON), so one client serves both:
  {"id": N, "type": "eval", "params": {"expression": "1+1"}}  ->  {"id":N,"result":{"value":2}}
  {"id": N, "type": "ping"}  ->  {"id":N,"result":{"pong":true,"ready":true}}
A blocking accept loop with one thread per connection: a buffered readline, json.loads,
eval, json.dumps, sendall. Nothing else happens per request, which is the point: every
other server in the comparison is reported as a multiple of this one.
"""

import contextlib
import json
import socket
import sys
import threading
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench.* importable
from bench._socket_file import socket_file

_NAMESPACE: dict[str, Any] = {"__name__": "__main__"}
_PONG = {"pong": True, "ready": True}


def _serve(conn: socket.socket) -> None:
    loads, dumps, send = json.loads, json.dumps, conn.sendall
    with conn, conn.makefile("rb", buffering=1 << 16) as reader:
        for line in reader:
            message = loads(line)
            try:
                if message["type"] == "eval":
                    expression = message["params"]["expression"]
                    reply = {
                        "id": message["id"],
                        "result": {"value": eval(expression, _NAMESPACE)},
                    }
                else:
                    reply = {"id": message["id"], "result": _PONG}
            except Exception as exc:
                reply = {
                    "id": message.get("id"),
                    "error": {"code": "execution_failed", "message": repr(exc)},
                }
            send(dumps(reply, separators=(",", ":")).encode() + b"\n")


def main() -> None:
    path = sys.argv[1]
    with socket_file(path):
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        listener.listen(64)
        while True:
            conn, _ = listener.accept()
            threading.Thread(target=_serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()

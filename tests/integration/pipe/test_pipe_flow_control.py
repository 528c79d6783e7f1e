"""The pipe backend under clients that do not read, and connection bursts: real process, real socket."""

import errno
import os
import signal
import socket
import time
from pathlib import Path

from tests.integration.pipe.support import PipeClient, StartServer

REPLY_BYTES = 4 << 20
REQUESTS = 100
MAX_INFLIGHT = 64  # the default
WAIT = 60.0


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_a_client_that_does_not_read_is_held_to_its_in_flight_replies(
    start_server: StartServer,
) -> None:
    server = start_server()
    writer, probe = server.connect(), server.connect()
    before = _rss_kib(server.process.pid)
    for request_id in range(REQUESTS):
        writer.send(
            {
                "id": request_id,
                "type": "eval",
                "params": {"expression": f"'x' * {REPLY_BYTES}"},
            }
        )
    # session.info queues behind the writer's requests on the default session, so once
    # it reports the in-flight ones as run, the server holds everything it will hold.
    deadline = time.monotonic() + WAIT
    while probe.result("session.info")["requests"] < MAX_INFLIGHT:
        assert time.monotonic() < deadline, "the server never ran the requests"
    grown_kib = _rss_kib(server.process.pid) - before
    # One encoded reply per request in flight (and no second copy of each result);
    # before the fix each held its result and its reply: twice this.
    bound_kib = MAX_INFLIGHT * REPLY_BYTES * 14 // 10 // 1024
    assert grown_kib < bound_kib, (grown_kib, bound_kib)
    replies = [writer.read() for _ in range(REQUESTS)]
    # Every reply arrives, matched by id: replies may come in any order (pipe.md §7).
    # Here a reply finished just as the socket drained goes out before older ones whose
    # wake-ups are still queued on the loop.
    assert sorted(reply["id"] for reply in replies) == list(range(REQUESTS))
    assert all(len(reply["result"]["value"]) == REPLY_BYTES for reply in replies)
    assert writer.result("eval", expression="1") == {"value": 1}


def test_a_connect_burst_up_to_the_limit_queues_instead_of_failing(
    start_server: StartServer,
) -> None:
    limit = 256
    server = start_server(max_connections=limit)
    sockets: list[socket.socket] = []
    try:
        # Stopped, the server accepts nothing: every connect waits in the listen backlog.
        os.kill(server.process.pid, signal.SIGSTOP)
        try:
            for _ in range(limit + 1):
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sockets.append(sock)
                sock.setblocking(False)
                try:
                    sock.connect(str(server.socket_path))
                except BlockingIOError as exc:
                    number = exc.errno or 0
                    raise AssertionError(
                        f"connect #{len(sockets)}: {errno.errorcode.get(number)}"
                    ) from None
        finally:
            os.kill(server.process.pid, signal.SIGCONT)
        clients = [PipeClient.adopt(sock, WAIT) for sock in sockets]
        served = [c for c in clients[:limit] if c.result("ping")["pong"]]
        assert len(served) == limit
        assert clients[limit].read()["error"]["code"] == "unavailable"
        for client in clients:
            client.close()
    finally:
        for sock in sockets:
            sock.close()

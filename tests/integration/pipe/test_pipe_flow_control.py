"""The pipe backend under clients that do not read, and connection bursts: real process, real socket."""

import base64
import errno
import os
import re
import signal
import socket
import time
import urllib.request
from pathlib import Path

from tests.integration.pipe.support import (
    PipeClient,
    PipeServerProcess,
    StartServer,
)

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


def _metric(server: PipeServerProcess, name: str) -> float:
    url = f"http://127.0.0.1:{server.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_a_client_that_does_not_read_is_held_to_the_unsent_bytes_bound(
    start_server: StartServer,
) -> None:
    bound, chunk, reads = 4 << 20, 1 << 20, 40
    server = start_server(max_unsent_bytes=bound)
    writer, other = server.connect(), server.connect()
    content = bytes(range(256)) * (chunk // 256)
    upload = writer.result("file.upload.open", path="big.bin", size=chunk)["upload"]
    writer.result(
        "file.upload.write",
        upload=upload,
        offset=0,
        data=base64.b64encode(content).decode(),
    )
    writer.result("file.upload.commit", upload=upload)
    read_count = (
        'beephost_requests_total{command="file.read",outcome="ok",transport="pipe"}'
    )
    for request_id in range(reads):
        writer.send(
            {"id": request_id, "type": "file.read", "params": {"path": "big.bin"}}
        )
    # Each reply is 1.4 MB (base64): the server reads requests until it holds the
    # bound, then neither reads nor starts more, whatever the client sends.
    deadline = time.monotonic() + WAIT
    while _metric(server, read_count) < bound // chunk - 1:
        assert time.monotonic() < deadline, "the server never ran the reads"
    assert other.result("file.stat", path="big.bin")["size"] == chunk, "still served"
    time.sleep(0.5)  # more reads would run now (before the fix all did)
    started = _metric(server, read_count)
    held = _metric(server, "beephost_pipe_unsent_bytes")
    assert started <= bound // chunk + 1, f"{started} of {reads} reads ran"
    assert held <= bound + 2 * chunk, f"{held} bytes held for the client"
    replies = [writer.read() for _ in range(reads)]
    assert sorted(reply["id"] for reply in replies) == list(range(reads))
    assert all(
        base64.b64decode(reply["result"]["data"]) == content for reply in replies
    )
    assert _metric(server, "beephost_pipe_unsent_bytes") == 0

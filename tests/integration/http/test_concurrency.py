"""Many clients at once: 16 threads x 100 mixed requests, no error."""

import threading
from collections import Counter

from tests.integration.http.conftest import StartServer
from tests.integration.http.support import ThreadServer

THREADS = 16
REQUESTS = 100


def _mixed(
    server: ThreadServer,
    index: int,
    session: str,
    errors: list[str],
    counts: Counter[str],
) -> None:
    client = server.client()
    try:
        base = f"/api/sessions/{session}/objects"
        for i in range(REQUESTS - 2):
            kind = i % 7
            if kind == 0:
                assert client.eval(f"{index} * {i}") == index * i
            elif kind == 1:
                result = client.ok(
                    "POST",
                    "/api/exec",
                    {"code": f"v = {i}\nprint(v)\nv", "session": session},
                )
                assert (result["stdout"], result["value"]) == (f"{i}\n", i)
            elif kind == 2:
                assert client.eval("v", session=session) == i - 1
            elif kind == 3:
                created = client.ok(
                    "POST",
                    base,
                    {"target": "collections.Counter", "args": ["ab"]},
                    status=201,
                )
                handle = created["value"]["$handle"]["id"]
                assert client.ok(
                    "POST",
                    f"{base}/{handle}/call",
                    {"method": "most_common", "args": [1]},
                )["value"] == [{"$tuple": ["a", 1]}]
                assert client.ok("POST", f"{base}/release", {"handles": [handle]}) == {
                    "released": 1
                }
            elif kind == 4:
                assert session in client.ok("GET", "/api/sessions")["sessions"]
            elif kind == 5:
                reply = client.stream({"code": f"print({i})", "session": session})
                assert reply.lines[0][1] == {"event": "stdout", "data": f"{i}\n"}
            else:
                assert client.post("/api/eval", {"expression": "1/0"}).status == 422
            counts[str(kind)] += 1
        client.ok("DELETE", f"/api/sessions/{session}")
    except Exception as exc:  # reported by the main thread
        errors.append(f"thread {index}: {type(exc).__name__}: {exc}")


def test_sixteen_threads_of_mixed_requests(start_server: StartServer) -> None:
    # Sessions are opened one after the other, without spare workers: concurrent
    # worker spawns can lose the worker's hello in the core (see the report).
    server: ThreadServer = start_server(max_sessions=THREADS + 1, prewarm=0)
    opener = server.client()
    sessions = [
        opener.ok("POST", "/api/sessions", {}, status=201)["session"]
        for _ in range(THREADS)
    ]
    errors: list[str] = []
    counts: Counter[str] = Counter()
    threads = [
        threading.Thread(target=_mixed, args=(server, i, sessions[i], errors, counts))
        for i in range(THREADS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert errors == []
    assert sum(counts.values()) == THREADS * (REQUESTS - 2)
    text = server.client().get("/metrics").body.decode()
    assert (
        'beephost_http_requests_total{method="POST",route="/api/eval",status="200"}'
        in text
    )

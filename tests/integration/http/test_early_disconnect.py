"""A client that disconnects right after sending its request still stops its code.

The backend starts watching a request's connection only when the request is still
running a moment after its body was read (beephost_http_backend.disconnect): a client
that is gone before then must be noticed when the watch starts, not at the deadline.
"""

import json

import pytest

from tests.integration.http.support import Client, ThreadServer

GUARD = 30  # seconds: the next request's deadline; the abandoned code sleeps 120 s
CODE = "import time\ntime.sleep(120)\ndone_here = True"


@pytest.mark.parametrize("path", ["/api/exec", "/api/exec/stream"])
def test_a_client_gone_right_after_its_request_stops_its_code(
    client: Client, shared_server: ThreadServer, path: str
) -> None:
    session = client.ok("POST", "/api/sessions", {}, status=201)["session"]
    leaver = shared_server.client()
    body = json.dumps({"code": CODE, "session": session, "timeout": 120}).encode()
    leaver.conn.request("POST", path, body, leaver.headers())
    leaver.close()  # gone before any answer, likely before the code even starts
    # The session is free well before the abandoned code's 120 s, and that code did
    # not finish (a request still queued behind it would be a 504 at GUARD).
    assert client.eval("'done_here' in globals()", session=session, timeout=GUARD) is (
        False
    )
    client.ok("DELETE", f"/api/sessions/{session}")

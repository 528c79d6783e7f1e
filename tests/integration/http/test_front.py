"""The server answers the fast lane and the probes before FastAPI is imported
(``front.py``).

The import starts once the executor has started, and while it runs an SDK client's evaluation and
its close (the release of its lease) and the health check's ``GET /ready`` and
``/health`` are answered; a request only FastAPI routes waits for it and is answered
once it is done.

A child process serves with the execution of ``fastapi`` held back by an import
hook until the test has its answers.
"""

import json
import subprocess
import sys
import textwrap
import threading

from tests.integration.http.support import ThreadServer, settings_for
from tests.integration.processes import service_env

CHILD = textwrap.dedent(
    """
    import http.client, importlib.util, json, sys, threading, time

    from beephost_http_backend.server import create_server
    from beephost_http_backend.settings import Settings

    class HeldImport:
        '''Holds the execution of `fastapi` (not its finding, which holds the global
        import lock) until released.'''

        def __init__(self):
            self.asked = threading.Event()
            self.release = threading.Event()

        def find_spec(self, name, path=None, target=None):
            if name != "fastapi":
                return None
            sys.meta_path.remove(self)
            spec = importlib.util.find_spec(name)
            loader, held = spec.loader, self

            class Loader:
                def create_module(self, spec):
                    return loader.create_module(spec)

                def exec_module(self, module):
                    held.asked.set()
                    held.release.wait(60)
                    loader.exec_module(module)

            spec.loader = Loader()
            return spec

    held = HeldImport()
    sys.meta_path.insert(0, held)
    settings = Settings(host="127.0.0.1", port=0, python=sys.argv[1], environment="t")
    server, port = create_server(settings)
    threading.Thread(target=server.run, daemon=True).start()

    def request(method, path, body=None):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        data = None if body is None else json.dumps(body).encode()
        headers = {} if body is None else {"Content-Type": "application/json"}
        conn.request(method, path, data, headers)
        reply = conn.getresponse()
        return reply.status, json.loads(reply.read())

    deadline = time.monotonic() + 60
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    out = {"started": server.started}
    out["asked"] = held.asked.wait(60)  # the build starts with the server
    out["eval"] = request("POST", "/api/eval", {"expression": "1+1"})
    out["release"] = request("DELETE", "/api/leases/front-lease-0123456789")  # what an SDK's close sends
    out["ready"] = request("GET", "/ready")
    out["health"] = request("GET", "/health")
    routed = {}
    thread = threading.Thread(
        target=lambda: routed.update(sessions=request("GET", "/api/sessions"))
    )
    thread.start()
    thread.join(0.5)
    out["routed_waited"] = thread.is_alive()
    out["eval_while_imported"] = request("POST", "/api/eval", {"expression": "2+2"})
    # In sys.modules from the start of its execution; FastAPI is defined at its end.
    out["fastapi_imported"] = hasattr(sys.modules.get("fastapi"), "FastAPI")
    held.release.set()
    thread.join(60)
    out["sessions"] = routed.get("sessions")
    out["fastapi_imported_after"] = hasattr(sys.modules.get("fastapi"), "FastAPI")
    server.should_exit = True
    print(json.dumps(out))
    """
)


def test_the_fast_lane_and_probes_are_answered_while_fastapi_is_imported(
    env_python: str,
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, env_python],
        env=service_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.splitlines()[-1])
    assert out["started"]
    assert out["eval"] == [200, {"value": 2}]
    assert out["release"][0] == 200, out["release"]
    assert out["ready"] == [200, {"ready": True}]
    assert out["health"] == [200, {"status": "ok"}]
    assert out["asked"]
    assert out["routed_waited"] is True
    assert out["eval_while_imported"] == [200, {"value": 4}]
    assert out["fastapi_imported"] is False
    status, sessions = out["sessions"]
    assert status == 200, sessions
    assert "default" in sessions["sessions"]
    assert out["fastapi_imported_after"] is True


def test_the_build_starts_once_the_executor_has_started(env_python: str) -> None:
    # Not with it: under a CPU quota the import only slowed the worker's start.
    server = ThreadServer(settings_for(env_python))
    front = server.server.front
    ready_at_build: list[bool] = []
    began = threading.Event()
    build = front.build

    def recorded() -> None:
        ready_at_build.append(front.backend.executor.ready)
        began.set()
        build()

    front.build = recorded  # type: ignore[method-assign]
    server.start()
    try:
        assert began.wait(60)
        assert ready_at_build == [True]
        assert server.client().get("/api/sessions").status == 200
    finally:
        server.stop()

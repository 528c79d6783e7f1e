"""The web console's HTTP behaviour on the real controller app (a real uvicorn server
on TCP and the admin Unix socket, real SQLite, the in-memory engine): sign-in and its
cookie, expiry, sign-out, CSRF refusals, the headers of every response, what a scoped
token sees, and that no backend token is in any page or URL.

The same pages in a real browser on the real engine: tests/e2e/test_console_browser.py.
"""

import http.client
import json
import re
import shutil
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from beephost_client.controller import ControllerClient
from beephost_controller.console.security_headers import CONTENT_SECURITY_POLICY
from beephost_controller.ports import ContainerState
from beephost_controller.resolver import Lock
from beephost_protocol.errors import InvalidRequest
from tests.integration.controller.test_backend_routes import (
    TOKEN,
    Live,
    _ready_env,
    _serve,
)
from tests.integration.controller.test_controller_api import fake_resolver


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: str

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def cookies(self) -> list[str]:
        return [v for k, v in self.headers if k.lower() == "set-cookie"]


@dataclass
class Browser:
    """Just enough of a browser: one cookie jar, forms posted url-encoded."""

    port: int
    cookies: dict[str, str] = field(default_factory=dict)

    def request(
        self,
        method: str,
        path: str,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        sent = dict(headers or {})
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            connection.request(method, path, body, sent)
            response = connection.getresponse()
            reply = Reply(
                response.status,
                response.getheaders(),
                response.read().decode("utf-8", "replace"),
            )
        finally:
            connection.close()
        for cookie in reply.cookies():
            name, _, rest = cookie.partition("=")
            value = rest.split(";")[0]
            if value in ('""', "") or "max-age=0" in cookie.lower():
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        return reply

    def sign_in(self, token: str) -> Reply:
        return self.request("POST", "/console/sign-in", {"token": token})

    def csrf(self, path: str = "/console") -> str:
        page = self.request("GET", path)
        assert page.status == 200, page.body
        found = re.search(r'<meta name="csrf-token" content="([^"]+)"', page.body)
        assert found is not None
        return found.group(1)


@pytest.fixture
def live(root: Path) -> Iterator[Live]:
    yield from _serve(root, TOKEN)


@pytest.fixture
def root() -> Iterator[Path]:
    # Unix socket paths are short (108 bytes): not under pytest's long tmp_path.
    path = Path(tempfile.mkdtemp(prefix="bh-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _port(live: Live) -> int:
    return int(live.tcp_url.rsplit(":", 1)[1])


@pytest.fixture
def browser(live: Live) -> Browser:
    return Browser(_port(live))


def _signed_in(live: Live, token: str = TOKEN) -> Browser:
    browser = Browser(_port(live))
    assert browser.sign_in(token).status == 303
    return browser


def _assert_console_headers(reply: Reply, *, data: bool = True) -> None:
    assert reply.header("content-security-policy") == CONTENT_SECURITY_POLICY
    csp = CONTENT_SECURITY_POLICY
    assert "default-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert reply.header("x-frame-options") == "DENY"
    assert reply.header("x-content-type-options") == "nosniff"
    assert reply.header("referrer-policy") == "no-referrer"
    if data:
        assert reply.header("cache-control") == "no-store"


def test_pages_need_a_sign_in_and_the_api_still_needs_its_token(
    browser: Browser,
) -> None:
    reply = browser.request("GET", "/console/environments/x")
    assert reply.status == 303
    assert reply.header("location") == "/console/sign-in?next=/console/environments/x"
    _assert_console_headers(reply)
    # Scripts get the 401 in the API's error shape, not a redirect.
    live = browser.request(
        "GET", "/console/live/overview", headers={"Accept": "application/json"}
    )
    assert live.status == 401
    assert json.loads(live.body)["error"]["code"] == "unauthorized"
    form = browser.request("GET", "/console/sign-in")
    assert form.status == 200
    assert 'type="password"' in form.body
    assert "<script>" not in form.body
    assert "onclick" not in form.body
    _assert_console_headers(form)
    # A console session is no API credential: the gate refuses /api/ without a token.
    signed = browser.sign_in(TOKEN)
    assert signed.status == 303
    assert browser.request("GET", "/api/v1/backends").status == 401


def test_a_wrong_token_is_a_clear_refusal_and_no_session(browser: Browser) -> None:
    for wrong in ("nope", "", TOKEN + "x", TOKEN[:-1]):
        reply = browser.sign_in(wrong)
        assert reply.status == 401, reply.body
        assert "That token is not valid for this controller" in reply.body
        assert reply.cookies() == []
        _assert_console_headers(reply)
    assert browser.request("GET", "/console").status == 303


def test_the_session_cookie_and_what_it_carries(live: Live, browser: Browser) -> None:
    reply = browser.request(
        "POST",
        "/console/sign-in",
        {"token": TOKEN, "next": "/console/environments/missing"},
    )
    assert reply.status == 303
    assert reply.header("location") == "/console/environments/missing"
    (cookie,) = reply.cookies()
    flags = [part.strip().lower() for part in cookie.split(";")]
    assert "httponly" in flags
    assert "samesite=strict" in flags
    assert "path=/" in flags
    assert any(f.startswith("max-age=") and int(f[8:]) > 0 for f in flags)
    assert "secure" not in flags, "plain HTTP on loopback: Secure would drop it"
    name, _, _value = cookie.partition("=")
    assert name == "beephost_console"
    assert TOKEN not in cookie
    # Off-site next targets are not followed.
    for target in ("https://evil.example/", "//evil.example/console", "/api/v1/config"):
        other = Browser(browser.port)
        assert (
            other.request("POST", "/console/sign-in", {"token": TOKEN, "next": target})
        ).header("location") == "/console"
    missing = browser.request("GET", "/console/environments/missing")
    assert missing.status == 404
    assert "no environment" in missing.body.lower()
    _assert_console_headers(missing)


def test_a_session_expires(root: Path) -> None:
    for live in _serve(root, TOKEN, console_session_ttl=0.5):
        browser = _signed_in(live)
        assert browser.request("GET", "/console").status == 200
        time.sleep(0.7)
        expired = browser.request("GET", "/console")
        assert expired.status == 303
        assert (expired.header("location") or "").startswith("/console/sign-in")


def test_sign_out_and_csrf_refusals(live: Live) -> None:
    browser = _signed_in(live)
    csrf = browser.csrf()
    refusals = [
        ({}, {}),  # no token
        ({"csrf": "wrong"}, {}),
        ({"csrf": csrf}, {"Origin": "https://evil.example"}),
        ({"csrf": csrf}, {"Sec-Fetch-Site": "cross-site"}),
        ({"csrf": csrf}, {"Sec-Fetch-Site": "same-site"}),
        # An opaque origin (a sandboxed frame) unless the browser says same-origin.
        ({"csrf": csrf}, {"Origin": "null"}),
        ({"csrf": csrf}, {"Origin": "null", "Sec-Fetch-Site": "cross-site"}),
    ]
    for form, headers in refusals:
        reply = browser.request("POST", "/console/sign-out", form, headers)
        assert reply.status == 401, (form, headers, reply.body)
        assert "refused" in reply.body.lower() or "csrf" in reply.body.lower()
        _assert_console_headers(reply)
        assert browser.request("GET", "/console").status == 200, "still signed in"
    # A header token (our scripts') works as the form field does.
    with live.client() as api:
        _ready_env(api, "data")
        started = api.start_backend("data", "pipe")
    reveal = f"/console/backends/{started.id}/connection"
    accept = {"Accept": "application/json"}
    assert browser.request("POST", reveal, headers=accept).status == 401
    wrong = browser.request("POST", reveal, headers={**accept, "X-CSRF-Token": "x"})
    assert wrong.status == 401
    shown = browser.request("POST", reveal, headers={**accept, "X-CSRF-Token": csrf})
    assert shown.status == 200
    assert json.loads(shown.body)["token"] == started.token
    _assert_console_headers(shown)
    # A sign-in posted from another site is refused too (login CSRF).
    other = Browser(browser.port)
    cross = other.request(
        "POST", "/console/sign-in", {"token": TOKEN}, {"Origin": "http://evil.example"}
    )
    assert cross.status == 401
    assert other.cookies == {}
    cookie = dict(browser.cookies)
    # Chromium's form post from a no-referrer page: Origin null, but same-origin.
    same = Browser(browser.port)
    posted = same.request(
        "POST",
        "/console/sign-in",
        {"token": TOKEN},
        {"Origin": "null", "Sec-Fetch-Site": "same-origin"},
    )
    assert posted.status == 303
    out = browser.request(
        "POST",
        "/console/sign-out",
        {"csrf": csrf},
        {"Origin": f"http://127.0.0.1:{browser.port}", "Sec-Fetch-Site": "same-origin"},
    )
    assert out.status == 303
    assert out.header("location") == "/console/sign-in"
    assert browser.cookies == {}
    # The old cookie is dead on the server too, not only forgotten by the browser.
    browser.cookies = cookie
    assert browser.request("GET", "/console").status == 303


def test_the_overview_lists_without_any_token(live: Live) -> None:
    with live.client() as api:
        _ready_env(api, "data")
        started = api.start_backend("data", "pipe")
        api.set_pool("data", "http", 0)
    browser = _signed_in(live)
    page = browser.request("GET", "/console")
    assert page.status == 200
    _assert_console_headers(page)
    assert started.id in page.body
    assert "data" in page.body
    assert started.token is not None
    assert started.token not in page.body
    assert TOKEN not in page.body
    # Our own static files only; no inline script, no third-party origin.
    assert re.findall(r"<script[^>]*>", page.body) == [
        f'<script src="/console/static/{name}.js" defer>'
        for name in ("live", "log", "forms", "playground")
    ]
    assert "http://" not in page.body.replace(f"127.0.0.1:{browser.port}", "")
    assert "https://" not in page.body
    css = browser.request("GET", "/console/static/console.css")
    assert css.status == 200
    _assert_console_headers(css, data=False)
    # The backend's page does not carry its token either, nor does any link.
    backend = browser.request("GET", f"/console/backends/{started.id}")
    assert backend.status == 200, backend.body
    assert started.token not in backend.body
    for href in re.findall(r'(?:href|action|src)="([^"]+)"', page.body + backend.body):
        assert started.token not in href
        assert TOKEN not in href


def test_live_updates_carry_an_etag(live: Live) -> None:
    browser = _signed_in(live)
    accept = {"Accept": "application/json"}
    first = browser.request("GET", "/console/live/overview", headers=accept)
    assert first.status == 200
    _assert_console_headers(first)
    sections = json.loads(first.body)["sections"]
    assert set(sections) == {"backends", "environments", "pools", "images", "jobs"}
    etag = first.header("etag")
    assert etag
    same = browser.request(
        "GET", "/console/live/overview", headers={**accept, "If-None-Match": etag}
    )
    assert same.status == 304
    assert same.body == ""
    with live.client() as api:
        _ready_env(api, "fresh")
    changed = browser.request(
        "GET", "/console/live/overview", headers={**accept, "If-None-Match": etag}
    )
    assert changed.status == 200
    assert "fresh" in json.loads(changed.body)["sections"]["environments"]


def test_environments_created_logged_and_deleted_from_forms(live: Live) -> None:
    browser = _signed_in(live)
    csrf = browser.csrf()
    bad = browser.request(
        "POST", "/console/environments", {"csrf": csrf, "name": "Bad Name!"}
    )
    assert bad.status == 400
    assert "not created" in bad.body
    made = browser.request(
        "POST",
        "/console/environments",
        {"csrf": csrf, "name": "made", "requirements": "six\nattrs\n"},
    )
    assert made.status == 303, made.body
    assert made.header("location") == "/console/environments/made"
    with live.client() as api:
        env = api.environment("made")
        assert env.job_id is not None
        api.wait_job(env.job_id, timeout=30)
    page = browser.request("GET", "/console/environments/made")
    assert page.status == 200
    assert "attrs" in page.body
    assert "six" in page.body
    assert f'data-job-log="/console/jobs/{env.job_id}/log"' in page.body
    log = browser.request(
        "GET", f"/console/jobs/{env.job_id}/log", headers={"Accept": "application/json"}
    )
    assert log.status == 200
    lines = json.loads(log.body)
    assert lines["job"]["status"] == "succeeded"
    assert lines["lines"]
    rest = browser.request(
        "GET",
        f"/console/jobs/{env.job_id}/log?after={lines['next']}",
        headers={"Accept": "application/json"},
    )
    assert json.loads(rest.body)["lines"] == []
    confirm = browser.request("GET", "/console/environments/made/delete")
    assert confirm.status == 200
    assert "Type" in confirm.body
    unconfirmed = browser.request(
        "POST", "/console/environments/made/delete", {"csrf": csrf, "confirm": "mad"}
    )
    assert unconfirmed.status == 400
    deleted = browser.request(
        "POST", "/console/environments/made/delete", {"csrf": csrf, "confirm": "made"}
    )
    assert deleted.status == 303
    with live.client() as api:
        assert "made" not in [e.name for e in api.environments()]


def test_a_backend_is_stopped_from_its_page(live: Live) -> None:
    with live.client() as api:
        _ready_env(api, "data")
        started = api.start_backend("data", "pipe")
    browser = _signed_in(live)
    csrf = browser.csrf(f"/console/backends/{started.id}")
    refused = browser.request("POST", f"/console/backends/{started.id}/stop", {})
    assert refused.status == 401
    stopped = browser.request(
        "POST", f"/console/backends/{started.id}/stop", {"csrf": csrf}
    )
    assert stopped.status == 303
    assert stopped.header("location") == "/console/environments/data"
    with live.client() as api:
        assert started.id not in [b.id for b in api.backends()]
    gone = browser.request("GET", f"/console/backends/{started.id}")
    assert gone.status == 404


def test_a_scoped_token_sees_what_the_api_shows_it(live: Live) -> None:
    with live.client() as api:
        api.admin_environment()
        env = api.environment("admin")
        assert env.job_id is not None
        api.wait_job(env.job_id, timeout=30)
        _ready_env(api, "plain")
        admin = api.start_backend("admin", "pipe")
        other = api.start_backend("plain", "pipe")
    scoped = live.worker_env(admin.id)["BEEPHOST_CONTROLLER_TOKEN"]
    with ControllerClient(live.tcp_url, token=scoped) as inside:
        mine = inside.start_backend("plain", "pipe")
        assert [b.id for b in inside.backends()] == [mine.id]
    browser = _signed_in(live, scoped)
    page = browser.request("GET", "/console")
    assert page.status == 200
    assert "Scoped token of backend" in page.body
    assert f'data-backend="{mine.id}"' in page.body
    # Not the others' rows (its own admin backend's id is in the header: who it is).
    assert other.id not in page.body
    assert f'data-backend="{admin.id}"' not in page.body
    assert page.body.count("Not visible to this token") == 2  # pools, images
    sections = json.loads(
        browser.request(
            "GET", "/console/live/overview", headers={"Accept": "application/json"}
        ).body
    )["sections"]
    assert other.id not in sections["backends"]
    assert mine.id in sections["backends"]
    csrf = browser.csrf()
    for path in (f"/console/backends/{other.id}", f"/console/backends/{admin.id}"):
        assert browser.request("GET", path).status == 404
    for action in ("stop", "connection"):
        reply = browser.request(
            "POST", f"/console/backends/{other.id}/{action}", {"csrf": csrf}
        )
        assert reply.status == 404
    with live.client() as api:
        assert other.id in [b.id for b in api.backends()]
    # Its admin backend stopped: its token, and the session it opened, are dead.
    with live.client() as api:
        api.stop_backend(mine.id)
        api.stop_backend(admin.id)
    assert browser.request("GET", "/console").status == 303


def test_errors_under_console_are_pages_with_the_headers(live: Live) -> None:
    browser = _signed_in(live)
    for path, status in (
        ("/console/nowhere", 404),
        ("/console/backends/b-missing", 404),
        ("/console/environments/missing/delete", 404),
        ("/console?unknown=1", 400),
    ):
        reply = browser.request("GET", path)
        assert reply.status == status, (path, reply.body)
        assert (reply.header("content-type") or "").startswith("text/html")
        _assert_console_headers(reply)
    # The API's own answers are untouched by the console.
    api = browser.request(
        "GET", "/api/v1/nowhere", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert api.status == 404
    assert json.loads(api.body)["error"]["code"] == "not_found"
    assert api.header("content-security-policy") is None


def test_the_playground_refuses_without_csrf_and_hides_others_backends(
    live: Live,
) -> None:
    with live.client() as api:
        api.admin_environment()
        env = api.environment("admin")
        assert env.job_id is not None
        api.wait_job(env.job_id, timeout=30)
        _ready_env(api, "plain")
        admin = api.start_backend("admin", "pipe")
        other = api.start_backend("plain", "pipe")
    browser = _signed_in(live)
    page = browser.request("GET", f"/console/playground?backend={other.id}")
    assert page.status == 200
    _assert_console_headers(page)
    assert f'<option value="{other.id}" selected>' in page.body
    csrf = browser.csrf("/console/playground")
    run = {"backend": other.id, "tab": "tab-0123456789", "code": "1 + 1"}

    def post(path: str, body: object, token: str | None) -> Reply:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if token is not None:
            headers["X-CSRF-Token"] = token
        connection = http.client.HTTPConnection("127.0.0.1", browser.port, timeout=30)
        cookie = "; ".join(f"{k}={v}" for k, v in browser.cookies.items())
        try:
            connection.request(
                "POST", path, json.dumps(body), {**headers, "Cookie": cookie}
            )
            response = connection.getresponse()
            return Reply(
                response.status, response.getheaders(), response.read().decode()
            )
        finally:
            connection.close()

    assert post("/console/playground/run", run, None).status == 401
    assert post("/console/playground/run", run, "wrong").status == 401
    bad = post("/console/playground/run", {**run, "tab": "../x"}, csrf)
    assert bad.status == 400
    # The in-memory engine runs no server: the run says so as an event, not a 500.
    ran = post("/console/playground/run", run, csrf)
    assert ran.status == 200
    events = [json.loads(line) for line in ran.body.splitlines()]
    assert events[-1]["kind"] == "error"
    assert events[-1]["text"].startswith("unavailable: cannot connect")
    stop = post(
        "/console/playground/interrupt", {"backend": other.id, "tab": run["tab"]}, csrf
    )
    assert stop.status == 200
    assert json.loads(stop.body) == {"interrupted": False}
    scoped = live.worker_env(admin.id)["BEEPHOST_CONTROLLER_TOKEN"]
    inside = _signed_in(live, scoped)
    assert other.id not in inside.request("GET", "/console/playground").body
    inside_csrf = inside.csrf("/console/playground")
    browser.cookies = inside.cookies
    assert post("/console/playground/run", run, inside_csrf).status == 404


def test_a_failed_build_is_rebuilt_from_its_page(root: Path) -> None:
    calls: list[list[str]] = []

    def flaky(requirements: list[str], python: str) -> Lock:
        calls.append(requirements)
        if len(calls) == 1:
            raise InvalidRequest("the index is down (the first time)")
        return fake_resolver(requirements, python)

    for live in _serve(root, TOKEN, resolver=flaky):
        with live.client() as api:
            env = api.create_environment("flaky", requirements=["six"])
            assert env.job_id is not None
            assert not api.wait_job(env.job_id, timeout=30).succeeded
        browser = _signed_in(live)
        page = browser.request("GET", "/console/environments/flaky")
        assert page.status == 200
        assert "the index is down" in page.body
        assert 'action="/console/environments/flaky/rebuild"' in page.body
        csrf = browser.csrf("/console/environments/flaky")
        assert (
            browser.request("POST", "/console/environments/flaky/rebuild", {}).status
            == 401
        )
        again = browser.request(
            "POST", "/console/environments/flaky/rebuild", {"csrf": csrf}
        )
        assert again.status == 303
        with live.client() as api:
            rebuilt = api.environment("flaky")
            assert rebuilt.job_id not in (None, env.job_id)
            assert api.wait_job(rebuilt.job_id, timeout=30).succeeded
        ready = browser.request("GET", "/console/environments/flaky")
        assert "/rebuild" not in ready.body


def test_a_backend_is_started_from_the_playground(live: Live) -> None:
    with live.client() as api:
        _ready_env(api, "data")
    browser = _signed_in(live)
    page = browser.request("GET", "/console/playground")
    assert 'action="/console/playground/start"' in page.body
    assert "<option>data</option>" in page.body
    csrf = browser.csrf("/console/playground")
    start = {"environment": "data", "type": "pipe"}
    assert browser.request("POST", "/console/playground/start", start).status == 401
    bad = browser.request(
        "POST", "/console/playground/start", {**start, "type": "ftp", "csrf": csrf}
    )
    assert bad.status == 400
    assert "no backend was started" in bad.body
    started = browser.request(
        "POST", "/console/playground/start", {**start, "csrf": csrf}
    )
    assert started.status == 303
    location = started.header("location") or ""
    assert location.startswith("/console/playground?backend=b-")
    backend_id = location.rsplit("=", 1)[1]
    with live.client() as api:
        backend = api.backend(backend_id)
    assert backend.started_by is None
    assert backend.environment == "data"
    chosen = browser.request("GET", location)
    assert f'<option value="{backend_id}" selected>' in chosen.body
    assert backend.token is None  # the API shows it only to its start's reply


def test_pools_are_set_from_the_environment_page(live: Live) -> None:
    with live.client() as api:
        _ready_env(api, "data")
    browser = _signed_in(live)
    page = browser.request("GET", "/console/environments/data")
    assert page.status == 200, page.body
    assert 'data-pool="http"' in page.body
    csrf = browser.csrf("/console/environments/data")
    url = "/console/environments/data/pools"
    refused = browser.request("POST", url, {"type": "http", "size": "2"})
    assert refused.status == 401
    for bad in ({"type": "http", "size": "x"}, {"type": "http", "size": "65"}):
        wrong = browser.request("POST", url, {**bad, "csrf": csrf})
        assert wrong.status == 400, wrong.body
        assert "the pool was not set" in wrong.body
    other = browser.request("POST", url, {"type": "tcp", "size": "1", "csrf": csrf})
    assert other.status == 400, other.body
    missing = browser.request(
        "POST",
        "/console/environments/nope/pools",
        {"type": "http", "size": "1", "csrf": csrf},
    )
    assert missing.status == 404
    with live.client() as api:
        api.set_pool("data", "http", 0, limits={"memory_mb": 256})
        assert api.pools()[0].limits.memory_mb == 256
        done = browser.request("POST", url, {"type": "http", "size": "1", "csrf": csrf})
        assert done.status == 303
        assert done.header("location") == "/console/environments/data#h-pools"
        (pool,) = [p for p in api.pools() if p.environment == "data"]
        assert (pool.type, pool.size, pool.source) == ("http", 1, "environment")
        assert pool.limits.memory_mb == 256, "its own limits stay"
        reset = browser.request(
            "POST", "/console/environments/data/pools/http/reset", {"csrf": csrf}
        )
        assert reset.status == 303
        assert [p for p in api.pools() if p.environment == "data"] == []


def test_memory_in_use_and_the_services_the_controller_did_not_start(
    root: Path,
) -> None:
    services = [
        {
            "container": "beephost-http-backend-1",
            "type": "http",
            "endpoint": "http://127.0.0.1:5678",
        },
        {
            "container": "beephost-rpc-backend-1",
            "type": "rpc",
            "endpoint": "grpc://127.0.0.1:50051",
        },
    ]
    for live in _serve(root, TOKEN, console_backends=services):
        with live.client() as api:
            _ready_env(api, "data")
            started = api.start_backend("data", "pipe")
            api.wait_backend(started.id, timeout=30)
        (name,) = [n for n in live.containers.containers if started.id in n]
        live.containers.memory[name] = 123_400_000
        live.containers.containers["beephost-http-backend-1"] = ContainerState(
            "c-http",
            "beephost-http-backend-1",
            {},
            "running",
            "healthy",
            0,
            False,
            2,
            {},
        )
        live.containers.memory["beephost-http-backend-1"] = 45_600_000
        browser = _signed_in(live)
        page = browser.request("GET", "/console")
        assert page.status == 200, page.body
        row = re.search(rf'<tr data-backend="{started.id}">(.*?)</tr>', page.body, re.S)
        assert row is not None
        assert "123.4 MB / 512 MiB" in row.group(1)
        http = re.search(
            r'<tr data-service="beephost-http-backend-1">(.*?)</tr>', page.body, re.S
        )
        assert http is not None
        assert ">ready<" in http.group(1)
        assert "http://127.0.0.1:5678" in http.group(1)
        assert "45.6 MB" in http.group(1)
        assert "<td>2</td>" in http.group(1)
        rpc = re.search(
            r'<tr data-service="beephost-rpc-backend-1">(.*?)</tr>', page.body, re.S
        )
        assert rpc is not None
        assert ">missing<" in rpc.group(1)
        # Unknown: a dash, never an error.
        del live.containers.memory[name]
        again = browser.request("GET", "/console")
        row = re.search(
            rf'<tr data-backend="{started.id}">(.*?)</tr>', again.body, re.S
        )
        assert row is not None
        assert "— / 512 MiB" in row.group(1)

"""The web console in a real browser (Debian's chromium through Playwright) against a
real controller on the real engine: sign in, a backend started with ``beep-host
start`` appearing without a reload (with its memory in use, and on the compose system
its three default backends), a build's log arriving while it runs, a pool's target set,
a file uploaded and downloaded, the connection revealed, a backend stopped, sign-out;
the playground with real matplotlib and pandas; a newcomer's walk from what
``scripts/up`` printed; and the refusals: a wrong token, an expired session, a
cross-site form post, a hostile DataFrame's script, a scoped token that cannot see
others' backends.

The controller is the ``controller_target`` fixture: the module's own process and
the compose system's, where users open the console (``ON_BOTH``); the expired
session needs a short-lived controller of its own, so it is the process's only. The
screenshots in docs/users/console.md are taken here, so they show the pages as they
are.
"""

import http.server
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from beephost_client.controller import Backend, ControllerClient
from beephost_protocol.errors import NotFound
from tests.e2e.compose_system import ComposeController, env_file_values
from tests.e2e.console_browser import (
    accessibility_problems,
    browser,
    new_page,
    playwright,
    screenshot,
)
from tests.e2e.controller_process import (
    ON_BOTH,
    ControllerProcess,
    ControllerTarget,
    beep_host,
    build_environment,
    module_controller,
    stopped_after,
)
from tests.e2e.plotting import plotting_environment

pytestmark = [pytest.mark.docker, pytest.mark.e2e]

__all__ = ["browser", "playwright"]  # the fixtures, bound here by import

TOKEN = "console-e2e-token-" + uuid.uuid4().hex
#: The controllers these tests drive.
TARGETS = ON_BOTH
ENV = "console-env"
#: Where a page without a sign-in sends the browser.
SIGN_IN = re.compile(r"/console/sign-in\?next=/console$")
#: Seconds a sign-in lasts on the short-lived controller.
SHORT_TTL = 3

controller = module_controller("console", {"TOKEN": TOKEN})
short_lived = module_controller(
    "console-ttl",
    {"TOKEN": TOKEN, "CONSOLE_SESSION_TTL": str(SHORT_TTL)},
    name="short_lived",
)


def _token(target: ControllerTarget) -> str:
    return target.environ()["BEEPHOST_CONTROLLER_TOKEN"]


@pytest.fixture(scope="module")
def api(controller_target: ControllerTarget) -> Iterator[ControllerClient]:
    with ControllerClient(
        controller_target.url, token=_token(controller_target), timeout=60
    ) as client:
        yield client


@pytest.fixture(scope="module")
def environment(api: ControllerClient) -> str:
    return build_environment(api, ENV, [], timeout=600)


@pytest.fixture
def page(browser: Browser, controller_target: ControllerTarget) -> Iterator[Page]:
    opened = new_page(browser, controller_target.url)
    yield opened
    opened.context.close()


def _shots(target: ControllerTarget) -> bool:
    """Screenshots from the module's own controller only (one set, not one a target)."""
    return isinstance(target, ControllerProcess)


def sign_in(page: Page, token: str) -> None:
    page.goto("/console")
    expect(page).to_have_url(SIGN_IN)
    page.get_by_label("Token").fill(token)
    page.get_by_role("button", name="Sign in").click()


@contextmanager
def _stopped_unless_gone(api: ControllerClient, backend: Backend) -> Iterator[None]:
    """Stops the backend when the block ends, unless the block stopped it."""
    try:
        yield
    finally:
        with suppress(NotFound):
            api.stop_backend(backend.id)


def _ready(api: ControllerClient, backend: Backend) -> Backend:
    return api.wait_backend(backend.id, timeout=120)


@TARGETS
def test_sign_in_watch_a_backend_use_its_files_stop_it_and_sign_out(
    page: Page,
    api: ControllerClient,
    environment: str,
    controller_target: ControllerTarget,
    tmp_path: Path,
) -> None:
    shots = _shots(controller_target)
    page.goto("/console")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    if shots:
        screenshot(page, "sign-in")
    # A wrong token: a clear message, still on the form.
    page.get_by_label("Token").fill("not-the-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("not valid for this controller")
    page.get_by_label("Token").fill(_token(controller_target))
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    (cookie,) = page.context.cookies()
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert _token(controller_target) not in cookie["value"]
    # A backend started through the SDK appears without a reload.
    page.evaluate("window.stillTheSamePage = true")
    # Started with the CLI, as a user would: `beep-host start http --venv NAME`.
    cli = beep_host(controller_target, "start", "http", "--venv", environment, "--json")
    assert cli.returncode == 0, cli.stderr
    printed = json.loads(cli.stdout)
    started = api.backend(printed["id"])
    token = printed["token"]
    with _stopped_unless_gone(api, started):
        row = page.locator(f'[data-backend="{started.id}"]')
        expect(row).to_be_visible(timeout=20_000)
        expect(row).to_contain_text("http")
        expect(row.locator(".status")).to_have_text("ready", timeout=60_000)
        # Memory in use, as the engine measures it, beside the limit.
        expect(row.locator("td.memory")).to_have_text(IN_USE_OF_LIMIT, timeout=20_000)
        assert page.evaluate("window.stillTheSamePage") is True
        if isinstance(controller_target, ComposeController):
            _the_three_default_backends(page, controller_target)
        assert isinstance(token, str)
        assert token
        assert token not in page.content()
        if shots:
            screenshot(page, "overview")
        row.get_by_role("link", name=started.id).click()
        expect(page.get_by_role("heading", name=started.id)).to_be_visible()
        _ready(api, started)
        # Upload a file, then download it.
        local = tmp_path / "notes.txt"
        local.write_text("written from the browser\n")
        page.get_by_label("Upload a file").set_input_files(local)
        page.get_by_role("button", name="Upload", exact=True).click()
        expect(page.get_by_role("status")).to_have_text("The file was uploaded.")
        with api.connect_backend(started.id) as client:
            assert client.files.read("notes.txt") == b"written from the browser\n"
            client.files.write("report.csv", "a,b\n1,2\n")
        page.reload()
        with page.expect_download() as download:
            page.get_by_role("link", name="report.csv").click()
        saved = tmp_path / "report.csv"
        download.value.save_as(saved)
        assert saved.read_text() == "a,b\n1,2\n"
        if shots:  # before the token is shown: no token in the docs
            screenshot(page, "backend")
        # The connection details: on a click, never in the URL.
        page.get_by_role("button", name="Show connection details").click()
        expect(page.locator("#connection .token")).to_have_text(token)
        assert token not in page.url
        page.get_by_role("button", name="Hide").click()
        expect(page.locator("#connection")).to_be_hidden()
        # Stop, after the confirmation.
        page.once("dialog", lambda dialog: dialog.accept())
        page.get_by_role("button", name="Stop", exact=True).click()
        expect(page).to_have_url(re.compile(f"/console/environments/{environment}$"))
        assert started.id not in [b.id for b in api.backends()]
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert page.context.cookies() == []
    page.goto("/console")
    expect(page).to_have_url(SIGN_IN)


#: A backend's memory cell: in use (decimal units) of its limit.
IN_USE_OF_LIMIT = re.compile(r"^\d+(\.\d)? (kB|MB|GB) / \d+ MiB$")


def _the_three_default_backends(page: Page, compose: ComposeController) -> None:
    """The compose system's own backends (compose services, not the controller's):
    listed with their status, endpoint and memory in use."""
    for service, endpoint in (
        ("pipe-backend", "unix:///run/beephost/pipe.sock"),
        ("http-backend", compose.compose.url("HTTP")),
        ("rpc-backend", compose.compose.url("RPC")),
    ):
        line = page.locator(f'[data-service="{compose.compose.project}-{service}-1"]')
        expect(line.locator(".status")).to_have_text("ready")
        expect(line.locator(".endpoint")).to_contain_text(endpoint)
        expect(line.locator("td.memory")).to_have_text(
            re.compile(r"^\d+(\.\d)? (kB|MB)$")
        )


@TARGETS
def test_a_build_log_arrives_while_the_build_runs(
    page: Page, api: ControllerClient, controller_target: ControllerTarget
) -> None:
    name = f"built-{uuid.uuid4().hex[:6]}"
    sign_in(page, _token(controller_target))
    page.get_by_label("Name").fill(name)
    # A package to resolve and install: the build takes long enough to be watched.
    page.get_by_label("Requirements").fill("six==1.16.0")
    page.get_by_role("button", name="Create and build").click()
    expect(page).to_have_url(re.compile(f"/console/environments/{name}$"))
    page.evaluate("window.stillTheSamePage = true")
    log = page.locator("#build-log")
    badge = page.locator("[data-job-status]")
    expect(log).not_to_be_empty(timeout=60_000)
    expect(badge).to_have_text("succeeded", timeout=600_000)
    expect(log).to_have_attribute("data-complete", "true")
    assert page.evaluate("window.stillTheSamePage") is True, "it came without a reload"
    env = api.environment(name)
    assert env.job_id is not None
    written = "\n".join(line.line for line in api.job_log(env.job_id).lines)
    assert log.text_content() == written + "\n"
    page.reload()
    expect(page.locator("#env-status")).to_have_text("ready")
    if _shots(controller_target):
        screenshot(page, "environment")
    page.get_by_role("link", name="Delete…").click()
    page.get_by_label(f"Type {name} to confirm").fill(name)
    if _shots(controller_target):
        screenshot(page, "environment-delete")
    page.get_by_role("button", name="Delete", exact=True).click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    assert name not in [e.name for e in api.environments()]


def test_an_expired_session_asks_for_the_token_again(
    browser: Browser, short_lived: ControllerProcess
) -> None:
    page = new_page(browser, short_lived.url)
    try:
        sign_in(page, TOKEN)
        expect(page.get_by_role("heading", name="Overview")).to_be_visible()
        time.sleep(SHORT_TTL + 0.5)
        page.reload()
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        expect(page).to_have_url(SIGN_IN)
    finally:
        page.context.close()


class _Evil(http.server.BaseHTTPRequestHandler):
    """Another origin's page: forms that post to the console, with and without the
    right CSRF token (an attacker could not know it; the origin check stands alone)."""

    page = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(self.page)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def evil_site() -> Iterator[tuple[type[_Evil], str]]:
    class Page(_Evil):
        pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Page, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@TARGETS
def test_a_cross_site_form_post_is_refused(
    page: Page,
    api: ControllerClient,
    environment: str,
    controller_target: ControllerTarget,
    evil_site: tuple[type[_Evil], str],
) -> None:
    started = api.start_backend(environment, "pipe")
    with stopped_after(api, started):
        sign_in(page, _token(controller_target))
        page.goto(f"/console/backends/{started.id}")
        csrf = page.locator('meta[name="csrf-token"]').get_attribute("content")
        assert csrf
        handler, evil = evil_site
        target = f"{controller_target.url}/console/backends/{started.id}/stop"
        handler.page = (
            f'<form id="bare" method="post" action="{target}">'
            '<button id="without">stop without</button></form>'
            f'<form id="full" method="post" action="{target}">'
            f'<input type="hidden" name="csrf" value="{csrf}">'
            '<button id="with">stop with</button></form>'
        ).encode()
        for button in ("#without", "#with"):
            page.goto(evil)
            with page.expect_response(target) as posted:
                page.click(button)
            assert posted.value.status == 401
            expect(page.get_by_role("alert")).to_contain_text("refused")
            assert started.id in [b.id for b in api.backends()], "not stopped"


@TARGETS
def test_a_scoped_token_sees_only_its_own_backends(
    page: Page,
    api: ControllerClient,
    environment: str,
    controller_target: ControllerTarget,
) -> None:
    admin_env = api.admin_environment()
    if admin_env.status != "ready":
        assert admin_env.job_id is not None
        assert api.wait_job(admin_env.job_id, timeout=900).succeeded
    admin = _ready(api, api.start_backend("admin", "pipe"))
    other = _ready(api, api.start_backend(environment, "pipe"))
    with stopped_after(api, admin, other):
        with api.connect_backend(admin.id) as inside:
            scoped = inside.evaluate(
                "__import__('os').environ['BEEPHOST_CONTROLLER_TOKEN']"
            )
        assert isinstance(scoped, str)
        with ControllerClient(controller_target.url, token=scoped) as as_admin:
            mine = as_admin.start_backend(environment, "pipe")
        with stopped_after(api, mine):
            sign_in(page, scoped)
            expect(page.locator(".who")).to_contain_text(admin.id)
            expect(page.locator(f'[data-backend="{mine.id}"]')).to_be_visible()
            expect(page.locator(f'[data-backend="{other.id}"]')).to_have_count(0)
            expect(page.locator(f'[data-backend="{admin.id}"]')).to_have_count(0)
            expect(page.get_by_text("Not visible to this token")).to_have_count(2)
            page.goto(f"/console/backends/{other.id}")
            expect(page.get_by_role("heading", name="Not found")).to_be_visible()


#: Code that shows a PNG and an HTML table carrying script (stdlib only: the console
#: sees what a plot or a DataFrame shows, an image and HTML).
RICH_CODE = """
import struct, sys, zlib

def _chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

class Dot:
    def _repr_png_(self):
        header = struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0)
        rows = b"".join(b"\\x00" + b"\\xd0\\x30\\x30" * 8 for _ in range(8))
        return (b"\\x89PNG\\r\\n\\x1a\\n" + _chunk(b"IHDR", header)
                + _chunk(b"IDAT", zlib.compress(rows)) + _chunk(b"IEND", b""))

class Table:
    def _repr_html_(self):
        return ("<table><tr><th>month</th><th>mm</th></tr><tr><td>Jan</td><td>49</td>"
                "</tr></table><script>parent.document.title = 'pwned'</script>"
                "<img src=x onerror=\\"parent.document.body.dataset.pwned = 'yes'\\">")

print("3 months loaded")
print("a warning", file=sys.stderr)
display(Dot())
display(Table())
6 * 7
"""


@TARGETS
def test_the_playground_runs_code_streams_shows_and_interrupts(
    page: Page,
    api: ControllerClient,
    environment: str,
    controller_target: ControllerTarget,
) -> None:
    started = _ready(api, api.start_backend(environment, "http"))
    with stopped_after(api, started):
        sign_in(page, _token(controller_target))
        page.goto(f"/console/playground?backend={started.id}")
        title = page.title()
        code = page.get_by_label("Code")
        run = page.get_by_role("button", name="Run", exact=True)
        output = page.locator("#pg-output")
        code.fill(RICH_CODE)
        run.click()
        expect(page.locator("#pg-state")).to_have_text("Done.", timeout=60_000)
        expect(output.locator("pre.out-stdout")).to_contain_text("3 months loaded")
        expect(output.locator("pre.out-stderr")).to_contain_text("a warning")
        expect(output.locator("pre.out-result")).to_have_text("42\n")
        image = output.locator("img.out-image")
        expect(image).to_be_visible()
        assert image.evaluate("img => img.naturalWidth") == 8
        frame = output.locator("iframe.out-html")
        assert frame.get_attribute("sandbox") == ""
        expect(page.frame_locator("iframe.out-html").locator("td").first).to_have_text(
            "Jan"
        )
        # Neither the script nor the onerror ran: not here, not in the frame.
        page.wait_for_timeout(500)
        assert page.title() == title
        assert page.evaluate("document.body.dataset.pwned") is None
        # Interrupt a sleep.
        code.fill("import time\ntime.sleep(120)")
        run.click()
        expect(page.locator("#pg-state")).to_have_text("Running…")
        page.wait_for_timeout(1000)
        page.get_by_role("button", name="Interrupt").click()
        expect(output.locator("pre.out-error")).to_contain_text(
            re.compile("interrupt", re.IGNORECASE), timeout=20_000
        )
        # A session per tab: this tab keeps its variables, another has its own.
        code.fill("x = 5")
        run.click()
        expect(page.locator("#pg-state")).to_have_text("Done.")
        code.fill("x * 2")
        run.click()
        expect(output.locator("pre.out-result")).to_have_text("10\n")
        other = page.context.new_page()
        other.goto(f"/console/playground?backend={started.id}")
        other.get_by_label("Code").fill("x")
        other.get_by_role("button", name="Run", exact=True).click()
        expect(other.locator("#pg-output pre.out-error")).to_contain_text("NameError")


@TARGETS
def test_a_pools_target_is_set_from_the_environment_page(
    page: Page,
    api: ControllerClient,
    environment: str,
    controller_target: ControllerTarget,
) -> None:
    sign_in(page, _token(controller_target))
    page.goto(f"/console/environments/{environment}")
    pool = page.locator('[data-pool="pipe"]')
    page.get_by_label("Keep pipe ready").fill("1")
    page.get_by_role("button", name="Set pipe pool").click()
    expect(page).to_have_url(
        re.compile(f"/console/environments/{environment}#h-pools$")
    )
    try:
        expect(pool.locator(".pool-size")).to_have_text("1")
        (set_,) = [p for p in api.pools(environment) if p.type == "pipe"]
        assert (set_.size, set_.source) == (1, "environment")
        # The filler starts a member: ready to be claimed, seen on a reload.
        deadline = time.monotonic() + 120
        while pool.locator(".pool-ready").text_content() != "1":
            assert time.monotonic() < deadline, "no pool member became ready"
            page.wait_for_timeout(1000)
            page.reload()
        if _shots(controller_target):
            screenshot(page, "environment-pools", full_page=True)
        page.get_by_role("button", name="Use the default").click()
        expect(pool.locator(".pool-size")).to_have_text("0")
    finally:
        with suppress(NotFound):
            api.reset_pool(environment, "pipe")
    assert [p for p in api.pools(environment) if p.type == "pipe"] == []


#: A real matplotlib plot, a real DataFrame, and a hostile one: its HTML (rendered
#: unescaped, as model-written HTML would be) carries a script and an onerror that
#: would reach the console's page, its title and a request of their own.
PLOT_CODE = """
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

plt.plot(np.arange(10) ** 2)
plt.show()
display(pd.DataFrame({"city": ["Oslo", "Lima"], "rain": [763, 6]}))


class Hostile(pd.DataFrame):
    def _repr_html_(self):
        return self.to_html(escape=False)


Hostile({"cell": [
    "<script>parent.document.title = 'pwned'; fetch('/console/pwned-script')</script>",
    '<img src="/console/pwned-img" onerror="parent.document.body.dataset.pwned = 1;'
    ' fetch(`/console/pwned-onerror`)">',
]})
"""


def test_the_playground_shows_real_plots_and_dataframes_and_no_hostile_script_runs(
    page: Page, api: ControllerClient, controller_target: ControllerTarget
) -> None:
    """On the plotting image test_rich_outputs builds (the local controller: the
    compose system's would build a second one)."""
    env = plotting_environment(api)
    started = _ready(api, api.start_backend(env, "http"))
    # Chromium may report a request the frame's CSP then blocks (a "request" event,
    # then "requestfailed" with "csp"), so what counts is what was answered and how
    # each planted request ended.
    answered: list[str] = []
    failed: dict[str, str | None] = {}
    page.on("response", lambda response: answered.append(response.url))
    page.on(
        "requestfailed", lambda request: failed.update({request.url: request.failure})
    )
    with stopped_after(api, started):
        sign_in(page, _token(controller_target))
        page.goto(f"/console/playground?backend={started.id}")
        title = page.title()
        page.get_by_label("Code").fill(PLOT_CODE)
        page.get_by_role("button", name="Run", exact=True).click()
        output = page.locator("#pg-output")
        expect(page.locator("#pg-state")).not_to_have_text("Running…", timeout=120_000)
        assert page.locator("#pg-state").text_content() == "Done.", (
            output.text_content()
        )
        plot = output.locator("img.out-image")
        expect(plot).to_have_count(1)
        assert plot.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [
            640,
            480,
        ]
        frames = output.locator("iframe.out-html")
        expect(frames).to_have_count(2)
        for index in range(2):
            assert frames.nth(index).get_attribute("sandbox") == ""
        table = page.frame_locator("iframe.out-html").first
        expect(table.locator("td").first).to_have_text("Oslo")
        expect(table.locator("th").nth(1)).to_have_text("city")
        hostile = page.frame_locator("iframe.out-html").nth(1)
        expect(hostile.locator("table")).to_have_count(1)
        expect(hostile.locator("img")).to_have_count(1)
        # Nothing ran: not in the console's origin, not in the frame.
        page.wait_for_timeout(1000)
        assert page.title() == title
        assert page.evaluate("document.body.dataset.pwned") is None
        assert not [url for url in answered if "pwned" in url], answered
        planted = {url: why for url, why in failed.items() if "pwned" in url}
        assert set(planted.values()) <= {"csp"}, planted
        assert page.evaluate("document.cookie") == "", "HttpOnly: no script sees it"
        if _shots(controller_target):
            screenshot(page, "playground", full_page=True)


def test_a_newcomer_signs_in_from_what_scripts_up_printed(
    browser: Browser, compose_controller: ComposeController
) -> None:
    """The README's walk: the console's URL as scripts/up printed it, the token from
    the .env it wrote, and the overview with the three default backends."""
    compose = compose_controller.compose
    (url,) = re.findall(r"^\s*console\s+(http://\S+/console)\s", compose.up_log, re.M)
    token = env_file_values(compose.env_file)["BEEPHOST_CONTROLLER_TOKEN"]
    page = new_page(browser, url.removesuffix("/console"))
    try:
        page.goto(url)
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        page.get_by_label("Token").fill(token)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="Overview")).to_be_visible()
        _the_three_default_backends(page, compose_controller)
        for section in ("Environments", "Warm pools", "Disk use of images"):
            expect(page.get_by_role("heading", name=section)).to_be_visible()
    finally:
        page.context.close()


def test_every_page_is_labelled_keyboard_usable_and_legible(
    page: Page,
    api: ControllerClient,
    environment: str,
    controller_target: ControllerTarget,
) -> None:
    """Signed in with the keyboard alone; on every page each control has a label,
    each button and link a name, and all text WCAG AA contrast (4.5:1; 3:1 large)."""
    started = _ready(api, api.start_backend(environment, "pipe"))
    with stopped_after(api, started):
        page.goto("/console")
        assert accessibility_problems(page) == []
        for _ in range(10):  # the skip link, the header, then the form
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.name") == "token":
                break
        else:
            pytest.fail("the token field is not reachable with Tab")
        page.keyboard.type(_token(controller_target))
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", name="Overview")).to_be_visible()
        pages = [
            "/console",
            f"/console/environments/{environment}",
            f"/console/environments/{environment}/delete",
            f"/console/backends/{started.id}",
            f"/console/playground?backend={started.id}",
        ]
        for path in pages:
            page.goto(path)
            page.wait_for_load_state("networkidle")
            assert accessibility_problems(page) == [], path
        # The playground's outputs too: stdout, stderr, a value, an error.
        page.get_by_label("Code").fill(
            "import sys\nprint('out')\nprint('err', file=sys.stderr)\n1 / 0"
        )
        page.get_by_role("button", name="Run", exact=True).click()
        expect(page.locator("#pg-output pre.out-error")).to_contain_text(
            "ZeroDivisionError"
        )
        assert accessibility_problems(page) == []

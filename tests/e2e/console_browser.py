"""A real browser for the console's tests: Debian's chromium driven by Playwright.

Playwright's own browser download cannot work here (no CDN), so it launches the
system's chromium (scripts/bootstrap installs it; ``BEEPHOST_CHROMIUM`` names another).
"""

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import (
    Browser,
    Page,
    Playwright,
    ViewportSize,
    sync_playwright,
)

from tests.e2e.conftest import unavailable

#: Where the tests put their screenshots: the console's page in the docs shows them.
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "users" / "console"

#: The window the screenshots are taken in: wide enough for the tables, small PNGs.
VIEWPORT: ViewportSize = {"width": 1180, "height": 760}


def chromium_path() -> str:
    path = os.environ.get("BEEPHOST_CHROMIUM") or shutil.which("chromium")
    if path is None:
        unavailable("chromium is not installed (apt-get install chromium)")
    return path


# Module-scoped, not session-scoped: while Playwright's sync API runs, its event loop
# is the main thread's running loop, and every later asyncio or anyio test in the
# session would fail with "cannot be called from a running event loop".
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    # Chromium refuses its sandbox to root (CI containers run as root).
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    launched = playwright.chromium.launch(executable_path=chromium_path(), args=args)
    yield launched
    launched.close()


def new_page(browser: Browser, base_url: str) -> Page:
    """A page in a fresh context: its own cookies, downloads accepted."""
    context = browser.new_context(
        base_url=base_url, viewport=VIEWPORT, accept_downloads=True
    )
    context.set_default_timeout(30_000)
    return context.new_page()


def screenshot(page: Page, name: str, *, full_page: bool = False) -> None:
    """``docs/users/console/<name>.png``, of the window (small), or of the whole
    page."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(
        path=SCREENSHOTS / f"{name}.png", animations="disabled", full_page=full_page
    )

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

from tests.e2e.session_fixtures import unavailable

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
    if not full_page:
        page.screenshot(path=SCREENSHOTS / f"{name}.png", animations="disabled")
        return
    # The window as tall as the page: Chromium does not paint a cross-origin frame
    # (the playground's sandboxed HTML outputs) outside the window, and a full-page
    # shot of a taller page showed them blank.
    height = int(page.evaluate("document.documentElement.scrollHeight"))
    page.set_viewport_size({"width": VIEWPORT["width"], "height": height})
    try:
        page.wait_for_timeout(500)  # the frames' first paint
        page.screenshot(
            path=SCREENSHOTS / f"{name}.png", animations="disabled", full_page=True
        )
    finally:
        page.set_viewport_size(VIEWPORT)


#: What a page's own script finds wrong for a reader with a screen reader, a keyboard
#: or weak eyes: a form control without a label (its accessible name), a button or
#: link without text, and text whose contrast with its background is under WCAG AA's
#: 4.5:1 (3:1 for large text), each background the first opaque one behind the text.
_ACCESSIBILITY = """
() => {
  const problems = [];
  const visible = (el) => !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length)
    && getComputedStyle(el).visibility !== "hidden";
  const describe = (el) => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "")
    + (el.className && typeof el.className === "string" ? "." + el.className.split(" ").join(".") : "");
  for (const el of document.querySelectorAll("input, select, textarea")) {
    if (el.type === "hidden" || !visible(el)) continue;
    const named = (el.labels && el.labels.length) || el.getAttribute("aria-label")
      || el.getAttribute("aria-labelledby");
    if (!named) problems.push("no label: " + describe(el));
  }
  for (const el of document.querySelectorAll("button, a[href]")) {
    if (!visible(el)) continue;
    if (!(el.textContent.trim() || el.getAttribute("aria-label")))
      problems.push("no text: " + describe(el));
  }
  const rgb = (text) => {
    const m = text.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return null;
    const p = m[1].split(",").map((v) => parseFloat(v));
    return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 };
  };
  const luminance = (c) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b);
  };
  const background = (el) => {
    for (let node = el; node && node.nodeType === 1; node = node.parentElement) {
      const c = rgb(getComputedStyle(node).backgroundColor);
      if (c && c.a >= 0.99) return c;
    }
    return { r: 255, g: 255, b: 255, a: 1 };
  };
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const seen = new Set();
  for (let text = walker.nextNode(); text; text = walker.nextNode()) {
    const el = text.parentElement;
    if (!el || seen.has(el) || !text.textContent.trim() || !visible(el)) continue;
    if (el.closest("iframe, script, style")) continue;
    seen.add(el);
    const style = getComputedStyle(el);
    const fg = rgb(style.color);
    if (!fg) continue;
    const bg = background(el);
    const [hi, lo] = [luminance(fg), luminance(bg)].sort((a, b) => b - a);
    const ratio = (hi + 0.05) / (lo + 0.05);
    const size = parseFloat(style.fontSize);
    const bold = parseInt(style.fontWeight, 10) >= 700;
    const needed = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
    if (ratio < needed)
      problems.push(`contrast ${ratio.toFixed(2)} < ${needed}: ${describe(el)} "${text.textContent.trim().slice(0, 30)}"`);
  }
  return problems;
}
"""


def accessibility_problems(page: Page) -> list[str]:
    """What is wrong on ``page`` for accessibility (``_ACCESSIBILITY``); [] if
    nothing."""
    problems: list[str] = page.evaluate(_ACCESSIBILITY)
    return problems

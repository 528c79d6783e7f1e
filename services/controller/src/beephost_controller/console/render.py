"""The console's templates (autoescaped Jinja2) and the filters they format with."""

import time
from pathlib import Path
from typing import Any

from fastapi.templating import Jinja2Templates
from starlette.requests import Request
from starlette.responses import HTMLResponse

from beephost_controller.console.auth import Viewer

HERE = Path(__file__).parent


def duration(seconds: float | None) -> str:
    """``42 s``, ``5 min``, ``2 h 05 min``, ``3 d 4 h``; an em dash for None."""
    if seconds is None:
        return "—"
    s = max(0, int(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def size(count: int | None) -> str:
    """Bytes in the unit that reads best (decimal, as Docker shows them)."""
    if count is None:
        return "—"
    value = float(count)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"


def ago(stamp: float | None) -> str:
    if stamp is None:
        return "—"
    return f"{duration(time.time() - stamp)} ago"


def utc(stamp: float | None) -> str:
    if stamp is None:
        return "—"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(stamp))


templates = Jinja2Templates(directory=HERE / "templates")
templates.env.filters.update(duration=duration, size=size, ago=ago, utc=utc)


def page(
    request: Request,
    template: str,
    viewer: Viewer | None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """A whole page: ``template`` in the layout, with the session's CSRF token for its
    forms and scripts."""
    csrf = viewer.session.csrf if viewer else ""
    return templates.TemplateResponse(
        request,
        template,
        {"viewer": viewer, "csrf": csrf, **context},
        status_code=status_code,
    )


def fragment(name: str, **context: Any) -> str:
    """One partial template rendered alone (the live updates' sections)."""
    return templates.get_template(name).render(**context)

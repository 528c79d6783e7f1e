"""Cross-site request forgery refused: on every state-changing console request, the
session's CSRF token (a form field or the ``X-CSRF-Token`` header of our scripts), and
the browser's own word on where the request comes from (``Origin``,
``Sec-Fetch-Site``).

The cookie is SameSite=Strict already; these checks hold when a browser ignores that,
or when a sibling origin on the same site posts.
"""

import hmac

from starlette.requests import Request

from beephost_controller.console.sessions import ConsoleSession
from beephost_protocol.errors import Unauthorized

HEADER = "x-csrf-token"
FIELD = "csrf"


class CsrfRefused(Unauthorized):
    """A state-changing request the console will not serve (401, the API's table)."""


def check_origin(request: Request) -> None:
    """Refuses a request a browser says comes from another site or origin.

    A request without either header (a script, curl) passes here: it carries no
    browser's cookie by accident, and the token check still applies.
    """
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        raise CsrfRefused(f"cross-site request refused (Sec-Fetch-Site: {site})")
    origin = request.headers.get("origin")
    if origin == "null":
        # Chromium sends "null" for a form post from a page whose Referrer-Policy is
        # no-referrer (ours), and so does an opaque origin (a sandboxed frame): only
        # the browser's Sec-Fetch-Site can then say it is our own page.
        if site != "same-origin":
            raise CsrfRefused("request from an opaque origin refused")
        return
    if origin is not None and origin != _own_origin(request):
        raise CsrfRefused("cross-origin request refused (its Origin is not this one)")


def _own_origin(request: Request) -> str:
    host = request.headers.get("host", "")
    return f"{request.url.scheme}://{host}"


def check_token(session: ConsoleSession, presented: str | None) -> None:
    """Refuses a request without the session's CSRF token (constant-time)."""
    if not presented:
        raise CsrfRefused("the form's CSRF token is missing: reload the page")
    if not hmac.compare_digest(session.csrf.encode(), presented.encode()):
        raise CsrfRefused("the form's CSRF token is wrong: reload the page")


async def check(request: Request, session: ConsoleSession) -> None:
    """Both checks, the token read from the header or the form (a form is parsed
    once: Starlette caches it for the route's own Form parameters)."""
    check_origin(request)
    presented = request.headers.get(HEADER)
    if presented is None:
        form = await request.form()
        value = form.get(FIELD)
        presented = value if isinstance(value, str) else None
    check_token(session, presented)

"""The headers every console response carries, errors and static files included.

A plain ASGI wrapper (as gate.py): it sets them on the response's start, whatever
produced it. The policy allows our own scripts, styles and images only: no inline
script, no third-party origin, no framing of the console.
"""

from starlette.types import ASGIApp, Message, Receive, Scope, Send

PREFIX = "/console"
STATIC = "/console/static/"

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)

HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
}


def _applies(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


class ConsoleHeaders:
    """Adds :data:`HEADERS` to every response under ``/console``, and
    ``Cache-Control: no-store`` to all but the static files (pages carry data)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _applies(scope["path"]):
            await self.app(scope, receive, send)
            return
        cache = "no-cache" if scope["path"].startswith(STATIC) else "no-store"

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                own = {**HEADERS, "cache-control": cache}
                kept = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.decode("latin-1").lower() not in own
                ]
                added = [(k.encode(), v.encode()) for k, v in own.items()]
                message = {**message, "headers": kept + added}
            await send(message)

        await self.app(scope, receive, with_headers)

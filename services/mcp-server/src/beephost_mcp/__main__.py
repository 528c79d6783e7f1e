"""Entry point: ``beephost-mcp`` serves over stdio or streamable HTTP, as
``BEEPHOST_MCP_TRANSPORT`` (or ``--transport``) says; ``beephost-mcp healthcheck``
probes a local HTTP server's ``/health`` (compose's healthcheck)."""

import argparse
import logging
import sys
from typing import TYPE_CHECKING

from pydantic import ValidationError

if TYPE_CHECKING:
    from beephost_mcp.settings import Settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="beephost-mcp",
        description="An MCP server: a Python sandbox per MCP session. Settings come "
        "from BEEPHOST_MCP_* variables (docs/users/mcp.md).",
    )
    parser.add_argument(
        "command",
        nargs="?",
        default="serve",
        choices=["serve", "healthcheck"],
        help="serve (the default), or probe the local HTTP server's /health",
    )
    parser.add_argument(
        "--transport",
        choices=["stdio", "http"],
        help="overrides BEEPHOST_MCP_TRANSPORT",
    )
    args = parser.parse_args(argv)

    from beephost_mcp.settings import Settings

    overrides = {"transport": args.transport} if args.transport else {}
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        # The messages name variables, never their values (a token may be one).
        problems = "; ".join(
            e["msg"].removeprefix("Value error, ") for e in exc.errors()
        )
        sys.exit(f"beephost-mcp: bad settings: {problems}")
    if args.command == "healthcheck":
        raise SystemExit(_healthcheck(settings))
    # stdout is the protocol's channel under stdio: logs go to stderr.
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    log = logging.getLogger("beephost_mcp")
    source = (
        f"the fixed backend {settings.backend_url}"
        if settings.backend_url is not None
        else f"pools of {settings.environment} ({settings.backend_type}) at "
        f"{settings.controller_url or 'the default controller'}"
    )
    if settings.transport == "stdio":
        from beephost_mcp.server import create_server

        log.info("serving MCP over stdio; sandboxes from %s", source)

        create_server(settings).run("stdio")
        return
    import uvicorn

    from beephost_mcp.server import create_app

    log.info(
        "serving MCP on http://%s:%s%s (%s); sandboxes from %s",
        settings.host,
        settings.port,
        settings.path,
        "bearer token" if settings.token else "NO authentication",
        source,
    )
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="warning",
    )


def _healthcheck(settings: "Settings") -> int:
    """Exit status of a GET /health on the local HTTP server (stdlib only)."""
    import http.client

    from beephost_mcp.settings import HEALTH_PATH

    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    conn = http.client.HTTPConnection(host, settings.port, timeout=3)
    try:
        conn.request("GET", HEALTH_PATH)
        status = conn.getresponse().status
    except OSError as exc:
        print(f"unreachable: {exc}")  # noqa: T201 - the healthcheck's report
        return 1
    finally:
        conn.close()
    print(f"{HEALTH_PATH}: HTTP {status}")  # noqa: T201
    return 0 if status == 200 else 1


if __name__ == "__main__":
    main()

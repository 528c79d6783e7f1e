"""Entry point: ``beephost-controller`` serves the REST API.

One uvicorn server listens on two sockets: the TCP address of the settings, and a Unix
socket that only admin backends see (their containers mount its directory). Requests
arriving on the Unix socket always need a token (deps.require_token), even when the
TCP API is open on loopback.
"""

import argparse
import logging
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from beephost_controller.settings import Settings

logger = logging.getLogger("beephost_controller")


def _bind_unix(path: Path) -> socket.socket:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o755)
    path.unlink(missing_ok=True)  # a stale socket of an earlier run
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    # Backends run as another uid; the directory is only mounted into admin backends.
    path.chmod(0o666)
    return sock


def _bind_tcp(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="beephost-controller",
        description="The Beep Python Host controller; settings: BEEPHOST_CONTROLLER_*.",
    )
    parser.add_argument(
        "command", nargs="?", default="serve", choices=["serve", "healthcheck"]
    )
    args = parser.parse_args(argv)
    from beephost_controller.settings import Settings

    settings = Settings()  # unsafe values (no token beyond loopback) stop here
    if args.command == "healthcheck":
        raise SystemExit(_healthcheck(settings))
    import uvicorn

    from beephost_controller import redact
    from beephost_controller.app import create_app
    from beephost_controller.redact import Redactor

    logging.basicConfig(
        level=os.environ.get("BEEPHOST_CONTROLLER_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    tcp = _bind_tcp(settings.host, settings.port)
    unix_path = settings.admin_socket
    unix = _bind_unix(unix_path)
    logger.info(
        "controller %s listening on %s:%s and %s",
        settings.name,
        settings.host,
        tcp.getsockname()[1],
        unix_path,
    )
    redactor = Redactor.from_settings(settings)
    config = uvicorn.Config(
        create_app(settings, redactor=redactor),
        loop="uvloop",
        http="httptools",
        log_level="warning",
        timeout_graceful_shutdown=10,
    )
    # After Config: it installs uvicorn's handlers. No token reaches any log line.
    redact.install(redactor, ("", "uvicorn", "uvicorn.error", "uvicorn.access"))
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[tcp, unix])
    finally:
        unix_path.unlink(missing_ok=True)
    if not server.started:
        raise SystemExit(3)


def _healthcheck(settings: "Settings") -> int:
    """Exit status of a /ready probe against the local API (stdlib only)."""
    import http.client

    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    conn = http.client.HTTPConnection(host, settings.port, timeout=3)
    try:
        conn.request("GET", "/ready")
        status = conn.getresponse().status
    except OSError as exc:
        print(f"unreachable: {exc}")  # noqa: T201 - the healthcheck's report
        return 1
    finally:
        conn.close()
    print(f"/ready: HTTP {status}")  # noqa: T201
    return 0 if status == 200 else 1


if __name__ == "__main__":
    main()

"""The egress proxy image's entrypoint: mitmdump on loopback, published on a Unix socket.

    python serve.py [--socket /run/egress-socket/proxy.sock] [--config ...] ...
    python serve.py --socket "" --listen-host 0.0.0.0 --metrics 0.0.0.0:9090 ...

The second form is the Kubernetes engine's: mitmdump listens on the pod's address
itself (the sandboxes reach it at its Service), and its counters are served over TCP.

Starts ``mitmdump`` (beside this interpreter) with ``addon.py`` (beside this file),
listening on ``127.0.0.1:3128`` inside the proxy's container only; once it listens,
serves the Unix socket sandboxes reach (their only way out), relaying each
connection to mitmdump with ``beephost_core.stream_relay.relay_connection``. The socket is
created mode 0666 (sandbox users are not the proxy's); a stale one is removed first.
mitmdump reads its CA from a private copy of ``--confdir`` in ``$TMPDIR`` (a tmpfs in
the image): the mounted confdir is read-only, and mitmproxy writes its
``mitmproxy-dhparam.pem`` there when it is missing. SIGTERM and SIGINT are passed on
to mitmdump; when mitmdump exits, so does this, with
its status (non-zero even when it exited 0: the proxy is gone).

Every path and port is an argument, with an ``EGRESS_*`` variable as its default.

It runs in the proxy's own environment (mitmproxy's pins), so the workspace's mypy does
not see it; tests/integration/egress/test_proxy.py checks it strictly against that
environment.
"""

import argparse
import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from beephost_core.stream_relay import CHUNK, relay_connection

HERE = Path(__file__).resolve().parent
log = logging.getLogger("beephost.egress.serve")

#: Seconds mitmdump has to listen (it loads the addon and the CA first: about 2 s).
START_TIMEOUT = 60.0


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="serve.py", description="Run the egress proxy behind a Unix socket."
    )
    add = parser.add_argument
    add("--socket", default=_env("EGRESS_SOCKET", "/run/egress-socket/proxy.sock"))
    add("--config", default=_env("EGRESS_CONFIG", "/run/egress/config.json"))
    add("--confdir", default=_env("EGRESS_CONFDIR", "/run/egress/ca"))
    add(
        "--metrics-socket",
        default=_env("EGRESS_METRICS_SOCKET", "/run/egress-metrics/metrics.sock"),
    )
    add(
        "--metrics",
        default=_env("EGRESS_METRICS", ""),
        help="HOST:PORT serving the counters over TCP instead of --metrics-socket",
    )
    add("--listen-host", default=_env("EGRESS_LISTEN_HOST", "127.0.0.1"))
    add(
        "--blocked",
        default=_env("EGRESS_BLOCKED", ""),
        help="addresses never reached, comma-separated (Kubernetes: the node's)",
    )
    add("--port", type=int, default=int(_env("EGRESS_LISTEN_PORT", "3128")))
    add("--addon", default=_env("EGRESS_ADDON", str(HERE / "addon.py")))
    add(
        "--mitmdump",
        default=_env("EGRESS_MITMDUMP", str(Path(sys.executable).parent / "mitmdump")),
    )
    add(
        "extra",
        nargs="*",
        help="more mitmdump arguments (after --), e.g. --set ssl_verify_upstream_...",
    )
    return parser.parse_args(argv)


def private_confdir(confdir: str) -> str:
    """A copy of ``confdir``'s files in a new 0700 directory under ``$TMPDIR``."""
    copy = Path(tempfile.mkdtemp(prefix="egress-confdir-"))
    for source in Path(confdir).iterdir():
        if source.is_file():
            shutil.copyfile(source, copy / source.name)
            (copy / source.name).chmod(0o600)
    return str(copy)


def mitmdump_command(args: argparse.Namespace, confdir: str) -> list[str]:
    """mitmdump's argv: the design's options, then the caller's extra arguments."""
    metrics = (
        f"egress_metrics={args.metrics}"
        if args.metrics
        else f"egress_metrics_socket={args.metrics_socket}"
    )
    return [
        args.mitmdump,
        "--mode", "regular",
        "--listen-host", args.listen_host,
        "--listen-port", str(args.port),
        "-s", args.addon,
        "--set", f"egress_config={args.config}",
        "--set", metrics,
        "--set", f"confdir={confdir}",
        "--set", "connection_strategy=lazy",
        "--set", "flow_detail=0",
        *(["--set", f"egress_blocked={args.blocked}"] if args.blocked else []),
        *args.extra,
    ]  # fmt: skip


def _listening(host: str, port: int) -> bool:
    target = "127.0.0.1" if host in ("0.0.0.0", "") else host
    try:
        socket.create_connection((target, port), timeout=1).close()
    except OSError:
        return False
    return True


async def _wait_listening(
    process: asyncio.subprocess.Process, host: str, port: int
) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not await asyncio.to_thread(_listening, host, port):
        if process.returncode is not None:
            raise SystemExit(f"mitmdump exited ({process.returncode}) before listening")
        if time.monotonic() > deadline:
            raise SystemExit(f"mitmdump did not listen on {host}:{port}")
        await asyncio.sleep(0.1)


def ensure_config(path: str) -> None:
    """An empty configuration (every request refused) where none is yet: on
    Kubernetes the controller writes it into the running pod, and mitmdump exits on
    an error logged while it starts (a missing file is one)."""
    config = Path(path)
    if config.exists():
        return
    config.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write("{}")


def _clear(path: str) -> None:
    # A socket left by a previous container: binding over it would fail.
    with contextlib.suppress(FileNotFoundError):
        Path(path).unlink()


async def run(args: argparse.Namespace) -> int:
    confdir = private_confdir(args.confdir)
    ensure_config(args.config)
    process = await asyncio.create_subprocess_exec(*mitmdump_command(args, confdir))
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, process.send_signal, signum)
    waiting = asyncio.create_task(process.wait())

    async def handle(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await relay_connection(reader, writer, ("127.0.0.1", args.port))

    try:
        await _wait_listening(process, args.listen_host, args.port)
        if not args.socket:  # no relay: mitmdump's own port is the way in
            log.info("listening on %s:%d", args.listen_host, args.port)
            code = await waiting
            return code or 1
        _clear(args.socket)
        server = await asyncio.start_unix_server(
            handle, args.socket, limit=CHUNK, backlog=1024
        )
        os.chmod(args.socket, 0o666)
        log.info("relaying %s to 127.0.0.1:%d", args.socket, args.port)
        async with server:
            code = await waiting
    finally:
        if process.returncode is None:
            process.terminate()
            await waiting
        shutil.rmtree(confdir, ignore_errors=True)
    log.info("mitmdump exited (%d)", code)
    return code or 1


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="egress proxy: %(message)s")
    sys.exit(asyncio.run(run(parse_args(argv))))


if __name__ == "__main__":
    main()

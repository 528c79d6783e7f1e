"""Egress: an HTTPS request from a sandbox through the egress proxy, beside the same with
full network, and the proxy's memory.

    uv run python bench/egress.py [--requests N] [--held N] [--holders N] [--seed N]

On a fake internet (tests/e2e/fake_internet.py: test servers in containers on an
internal Docker network, their certificates from a test CA), a controller of its own
(bench/controller.py's, same labels and clean-up) whose egress proxy joins that network.
One environment with ``requests`` (for its urllib3) and an allow-list: ``other.test``
without a secret (the tunnel stays end-to-end TLS) and ``api.allowed.test`` with one
(the proxy intercepts TLS to put the header in); the same environment without an
allow-list and ``network: true`` (full network: the default bridge, to which the test
servers are connected too, at another address).

1. LATENCY: a GET of ``/`` with a new connection each time (``Connection: close``: TCP,
   the CONNECT when proxied, the TLS handshake, the request; what one ``requests.get``
   costs), timed inside the sandbox with ``perf_counter``, ``--requests`` (200) per case
   in shuffled interleaved blocks of 20: ALLOW-LIST END-TO-END (other.test through the
   proxy), ALLOW-LIST INTERCEPTED (api.allowed.test, the secret put in), and the
   baseline FULL NETWORK (other.test straight to its bridge address, the same TLS:
   its certificate checked for its name). p50 and p99, as ratios to full network.
   Each request has a pool of its own: urllib3 would otherwise reuse a connection
   the server is closing (the test server does not echo ``Connection: close``) and
   fail it as ``RemoteDisconnected``.
2. MEMORY: the proxy container's as ``docker stats`` counts it (bench/memory.py's
   reading), idle, and with ``--held`` (100) connections held open at once from
   ``--holders`` (4) sandboxes (each a tunnel to other.test with its TLS done).

Cleanup, always: the controller's (bench/controller.py) and the fake internet's, by
their labels.
"""

import argparse
import contextlib
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench.* importable

import docker
from bench import controller, memory
from bench._harness import entry
from bench._options import bench_parser, known_args
from tests.e2e.fake_internet import (
    ALLOWED,
    OTHER,
    FakeInternet,
    fake_internet_network,
)

from beephost_client import Client
from beephost_client.controller import ControllerClient

ENVIRONMENT = "egress"
OPEN = "egress-open"
SECRET = "bench-egress-secret"
BLOCK = 20
#: Sandboxes holding the connections of the memory case.
HOLDERS = 4
#: In the sandbox: one GET with a new connection, timed (urllib3, from requests).
TIMER = r"""
import os, ssl, time, urllib3
_CA = {ca!r}

def _context():
    context = ssl.create_default_context(cafile=os.environ.get("SSL_CERT_FILE"))
    context.load_verify_locations(cadata=_CA)
    return context

def _pool(host, address):
    proxy = os.environ.get("HTTPS_PROXY")
    if proxy:
        url = urllib3.util.parse_url(proxy)
        headers = urllib3.make_headers(proxy_basic_auth=url.auth)
        manager = urllib3.ProxyManager(
            url._replace(auth=None).url, proxy_headers=headers,
            ssl_context=_context(), retries=False)
        return manager, f"https://{{host}}/"
    pool = urllib3.HTTPSConnectionPool(
        address, 443, ssl_context=_context(), server_hostname=host,
        assert_hostname=host, retries=False)
    return pool, "/"

def _times(host, address, count):
    out = []
    for _ in range(count):
        # A pool of its own per request (made untimed): a new connection each time,
        # never one urllib3 kept while the server was closing it.
        pool, url = _pool(host, address)
        started = time.perf_counter()
        reply = pool.request("GET", url, headers={{"Host": host, "Connection": "close"}})
        out.append(time.perf_counter() - started)
        assert reply.status == 200, reply.status
        pool.clear() if hasattr(pool, "clear") else pool.close()
    return out
"""
#: In a sandbox: ``count`` tunnels to other.test held open, TLS done.
HOLD = r"""
import base64, os, socket, ssl, urllib.parse
_held = []
_url = urllib.parse.urlsplit(os.environ["HTTPS_PROXY"])
_credential = base64.b64encode(f"{{_url.username}}:{{_url.password}}".encode()).decode()
_context = ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
_context.load_verify_locations(cadata={ca!r})
for _ in range({count}):
    raw = socket.create_connection((_url.hostname, _url.port), timeout=30)
    raw.sendall(
        f"CONNECT {host}:443 HTTP/1.1\r\nHost: {host}:443\r\n"
        f"Proxy-Authorization: Basic {{_credential}}\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += raw.recv(4096)
    assert head.startswith(b"HTTP/1.1 200"), head
    _held.append(_context.wrap_socket(raw, server_hostname={host!r}))
len(_held)
"""
CASES = ("full network", "allow-list end-to-end", "allow-list intercepted")


@dataclass
class Results:
    requests: dict[str, list[float]] = field(default_factory=dict)
    idle_mib: float = 0.0
    held_mib: float = 0.0
    held: int = 0
    holders: int = 0


def proxy_mib(engine: docker.DockerClient, name: str, samples: int = 3) -> float:
    usage, _ = memory.least_usage(engine.containers.get(name), samples)
    return usage.used / memory.MIB


def environment(
    client: ControllerClient,
    ctl: controller.Controller,
    name: str,
    egress: dict[str, object] | None,
) -> None:
    ctl.environments.append(name)
    if egress is None:
        env = client.create_environment(name, requirements=["requests"], network=True)
    else:
        env = client.create_environment(name, requirements=["requests"], egress=egress)
    if env.job_id is not None:
        job = client.wait_job(env.job_id, timeout=900)
        assert job.succeeded, job.error


def started(client: ControllerClient, name: str) -> tuple[str, Client]:
    backend = client.start_backend(name, "pipe")
    assert client.wait_backend(backend.id, timeout=120).status == "ready"
    return backend.id, client.connect_backend(backend.id)


def measure(
    ctl: controller.Controller,
    client: ControllerClient,
    internet: FakeInternet,
    args: argparse.Namespace,
    say: Callable[[str], None],
) -> Results:
    rng = random.Random(args.seed)
    engine = docker.from_env()
    results = Results(holders=args.holders)
    ca = internet.ca_file.read_text()
    client.set_secret(SECRET, "bench-value-0123456789")
    say("building the environments (requests; an allow-list, and full network)")
    environment(
        client,
        ctl,
        ENVIRONMENT,
        {"allow": [{"host": ALLOWED, "secret": {"secret": SECRET}}, {"host": OTHER}]},
    )
    environment(client, ctl, OPEN, None)
    say("the fake internet's servers, on the controller's base image")
    internet.start_servers(controller.base_image(client))
    # Full network: the servers on the default bridge too, at another address.
    bridge = internet.join_bridge(OTHER)
    with contextlib.ExitStack() as stack:
        _, proxied = started(client, ENVIRONMENT)
        stack.enter_context(proxied)
        _, open_ = started(client, OPEN)
        stack.enter_context(open_)
        proxy = f"beephost-{ctl.name}-egress"
        time.sleep(2)
        results.idle_mib = proxy_mib(engine, proxy)
        say(f"proxy idle: {results.idle_mib:.1f} MiB")
        for target in (proxied, open_):
            target.execute(TIMER.format(ca=ca))
        runs: dict[str, tuple[Client, str, str]] = {
            "full network": (open_, OTHER, bridge),
            "allow-list end-to-end": (proxied, OTHER, ""),
            "allow-list intercepted": (proxied, ALLOWED, ""),
        }
        for name, (target, host, address) in runs.items():  # warm-up
            try:
                target.execute(f"_times({host!r}, {address!r}, 3)")
            except Exception:
                tail = subprocess.run(
                    [
                        "sh",
                        "-c",
                        f"docker inspect -f '{{{{json .State}}}} "
                        f"{{{{.RestartCount}}}}' {proxy}; docker logs --tail 120 {proxy}",
                    ],
                    capture_output=True,
                    text=True,
                    check=False,
                )
                say(
                    f"{name} failed; the proxy's last output:\n{tail.stdout}{tail.stderr}"
                )
                raise
            results.requests[name] = []
        while pending := [n for n in CASES if len(results.requests[n]) < args.requests]:
            rng.shuffle(pending)
            for name in pending:
                target, host, address = runs[name]
                times = target.execute(
                    f"_times({host!r}, {address!r}, {BLOCK})", timeout=120
                ).value
                results.requests[name] += list(times)
        for name in CASES:
            say(f"{name}: p50 {statistics.median(results.requests[name]) * 1e3:.2f} ms")
        say(f"holding {args.held} connections from {args.holders} sandboxes")
        per = -(-args.held // args.holders)
        holders = [started(client, ENVIRONMENT)[1] for _ in range(args.holders - 1)]
        for holder in holders:
            stack.enter_context(holder)
        remaining = args.held
        for holder in [proxied, *holders]:
            count = min(per, remaining)
            remaining -= count
            held = holder.execute(
                HOLD.format(ca=ca, count=count, host=OTHER), timeout=300
            ).value
            results.held += int(held)
        time.sleep(2)
        results.held_mib = proxy_mib(engine, proxy)
        say(f"proxy with {results.held} held: {results.held_mib:.1f} MiB")
    return results


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def rows(res: Results) -> list[tuple[str, str, str, str]]:
    """(case, value, unit, ratio to full network)."""
    base = statistics.median(res.requests["full network"])
    out = []
    for name in CASES:
        values = res.requests[name]
        p50 = statistics.median(values)
        ratio = "baseline" if name == "full network" else f"{p50 / base:.2f}x"
        out.append(
            (f"HTTPS GET, new connection, {name} p50", f"{p50 * 1e3:.2f}", "ms", ratio)
        )
        out.append(
            (
                f"HTTPS GET, new connection, {name} p99",
                f"{p(values, 0.99) * 1e3:.2f}",
                "ms",
                "-",
            )
        )
    out.append(("proxy memory, idle", f"{res.idle_mib:.1f}", "MiB", "-"))
    out.append(
        (
            f"proxy memory, {res.held} connections held from {res.holders} sandboxes",
            f"{res.held_mib:.1f}",
            "MiB",
            "-",
        )
    )
    return out


def report(res: Results) -> None:
    print(f"\negress, {len(res.requests['full network'])} requests per case")
    print("| case | value | unit | vs full network |")
    print("|---|---|---|---|")
    for case, value, unit, ratio in rows(res):
        print(f"| {case} | {value} | {unit} | {ratio} |")


@contextlib.contextmanager
def on_fake_internet(
    say: Callable[[str], None],
) -> Iterator[tuple[controller.Controller, ControllerClient, FakeInternet]]:
    """A fake internet, and a controller whose egress proxy is on it."""
    with fake_internet_network("docker") as internet:
        settings = internet.controller_settings()
        with controller.running(say, settings) as (ctl, client, _):
            yield ctl, client, internet


def measure_all(args: argparse.Namespace, say: Callable[[str], None]) -> Results:
    with on_fake_internet(say) as (ctl, client, internet):
        return measure(ctl, client, internet, args, say)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = bench_parser(__doc__ or "")
    parser.add_argument("--requests", type=int, default=200, help="per case")
    parser.add_argument("--held", type=int, default=100, help="connections held")
    parser.add_argument(
        "--holders", type=int, default=HOLDERS, help="sandboxes holding"
    )
    parser.add_argument("--seed", type=int, default=0)
    return known_args(parser, argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if controller.no_docker_cli():
        return 2
    controller.stoppable()
    began = time.perf_counter()

    def say(text: str) -> None:
        print(f"[{time.perf_counter() - began:5.0f} s] {text}", file=sys.stderr)

    report(measure_all(args, say))
    return 0


if __name__ == "__main__":
    entry(main)

"""The backends' plain metrics expose what prometheus_client's own would.

prometheus_client is the oracle: the same updates go to a tally and to the library's
metric of the same name, and the two expositions must be equal but for the library's
``_created`` series.
"""

import asyncio
import socket
import subprocess
import sys
import time
import urllib.request

import prometheus_client
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from beephost_core.metrics import EXPOSE_DELAY, LATENCY_BUCKETS, CoreMetrics
from beephost_core.tallies import Tallies


def exposition(registry: CollectorRegistry) -> list[str]:
    text = generate_latest(registry).decode()
    return [line for line in text.splitlines() if "_created" not in line]


def test_counters_gauges_and_histograms_read_as_prometheus_clients_do() -> None:
    tallies, oracle = Tallies(), CollectorRegistry()
    ours = (
        tallies.counter("t_rejected", "Rejected.", ["code"]),
        tallies.counter("t_plain", "Plain."),
        tallies.gauge("t_open", "Open."),
        tallies.gauge("t_read", "Read when scraped."),
        tallies.histogram("t_seconds", "Seconds.", ["route"], buckets=(0.5, 1, 30)),
        tallies.histogram("t_spawn", "Default buckets."),
    )
    theirs = (
        prometheus_client.Counter("t_rejected", "Rejected.", ["code"], registry=oracle),
        prometheus_client.Counter("t_plain", "Plain.", registry=oracle),
        prometheus_client.Gauge("t_open", "Open.", registry=oracle),
        prometheus_client.Gauge("t_read", "Read when scraped.", registry=oracle),
        prometheus_client.Histogram(
            "t_seconds", "Seconds.", ["route"], buckets=(0.5, 1, 30), registry=oracle
        ),
        prometheus_client.Histogram("t_spawn", "Default buckets.", registry=oracle),
    )
    for rejected, plain, open_, read, seconds, spawn in (ours, theirs):
        rejected.labels("unauthorized").inc()
        rejected.labels(code="too_large").inc(2)
        rejected.labels("unauthorized").inc()
        plain.inc(0.5)
        open_.inc()
        open_.inc()
        open_.dec()
        read.set_function(lambda: 7)
        for value in (0.1, 0.5, 0.7, 1, 31):
            seconds.labels("/run").observe(value)
        seconds.labels(route="/files").observe(2)
        spawn.observe(0.04)
    assert exposition(tallies.registry) == exposition(oracle)
    # Read afresh at every collection.
    ours[2].set(5)
    theirs[2].set(5)
    assert exposition(tallies.registry) == exposition(oracle)


def test_request_metrics_read_as_prometheus_clients_would() -> None:
    # The bucket edges too: le="1.0", not "1", as Prometheus' own client writes them.
    core, oracle = CoreMetrics("pipe"), CollectorRegistry()
    requests = prometheus_client.Counter(
        "beephost_requests",
        "Requests handled, by command and outcome (ok or an error code).",
        ["transport", "command", "outcome"],
        registry=oracle,
    )
    latency = prometheus_client.Histogram(
        "beephost_request_seconds",
        "Time from receiving a request to its reply, by command.",
        ["transport", "command"],
        buckets=LATENCY_BUCKETS,
        registry=oracle,
    )
    for command, outcome, seconds in (
        ("eval", "ok", 0.0003),
        ("eval", "ok", 1),
        ("eval", "timeout", 31),
        ("exec", "ok", 0.0002),
    ):
        core.observe(command, outcome, seconds)
        requests.labels("pipe", command, outcome).inc()
        latency.labels("pipe", command).observe(seconds)
    ours = [line for line in exposition(core.registry) if "beephost_request" in line]
    assert ours == [line for line in exposition(oracle) if "beephost_request" in line]
    assert any('le="1.0"' in line for line in ours)


def test_wrong_labels_are_refused_as_prometheus_client_refuses_them() -> None:
    counter = Tallies().counter("t_rejected", "Rejected.", ["code"])
    for wrong in ((), ("a", "b")):
        with pytest.raises(ValueError, match="t_rejected takes the labels"):
            counter.labels(*wrong)
    with pytest.raises(ValueError, match="takes the labels"):
        counter.labels(reason="x")
    with pytest.raises(ValueError, match="takes the labels"):
        Tallies().counter("t_plain", "Plain.").labels("x")


def test_the_registry_is_made_only_when_asked_for() -> None:
    # A fresh interpreter: the test session has long imported prometheus_client.
    code = (
        "import sys\n"
        "from beephost_core.metrics import CoreMetrics\n"
        "metrics = CoreMetrics('pipe')\n"
        "metrics.observe('eval', 'ok', 0.001)\n"
        "metrics.worker_spawn.observe(0.05)\n"
        "metrics.worker_restarts.labels('lost').inc()\n"
        "assert 'prometheus_client' not in sys.modules, 'imported too soon'\n"
        "value = metrics.registry.get_sample_value(\n"
        "    'beephost_requests_total',\n"
        "    {'transport': 'pipe', 'command': 'eval', 'outcome': 'ok'},\n"
        ")\n"
        "print(value)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert float(done.stdout) == 1.0


def scrape(port: int) -> str:
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text: str = response.read().decode()
        return text


def test_serve_binds_at_once_and_answers_a_scrape_sent_before_it_exposes() -> None:
    async def serve() -> tuple[float, str]:
        metrics = CoreMetrics("pipe")
        metrics.observe("eval", "ok", 0.001)
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        metrics.serve(port, "127.0.0.1")
        with pytest.raises(
            OSError, match="in use"
        ):  # the port is held from the call on
            CoreMetrics("pipe").serve(port, "127.0.0.1")
        sent = time.monotonic()
        text = await asyncio.to_thread(scrape, port)
        return time.monotonic() - sent, text

    waited, text = asyncio.run(serve())
    line = 'beephost_requests_total{command="eval",outcome="ok",transport="pipe"} 1.0'
    assert line in text
    assert waited > EXPOSE_DELAY / 2  # it waited in the backlog, not refused

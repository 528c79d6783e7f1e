"""A throwaway CNCF distribution registry (Debian's docker-registry) on a loopback port:
the engine trusts 127.0.0.0/8 over plain HTTP, so no daemon setting is needed."""

import contextlib
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ports import free_port


@contextlib.contextmanager
def local_registry(binary: str, directory: Path) -> Iterator[str]:
    """Serve a registry with its storage in ``directory``; yields ``127.0.0.1:PORT``."""
    port = free_port()
    config = directory / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {directory / 'data'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    log = directory / "registry.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [binary, "serve", str(config)], stdout=output, stderr=subprocess.STDOUT
        )
    try:
        _wait_for_registry(f"http://127.0.0.1:{port}/v2/", process, log)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_for_registry(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    # Bypass any HTTP(S)_PROXY of the environment: this is loopback.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"docker-registry exited: {log.read_text()[-2000:]}")
        try:
            with opener.open(url, timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    pytest.fail(f"docker-registry did not answer on {url}: {log.read_text()[-2000:]}")

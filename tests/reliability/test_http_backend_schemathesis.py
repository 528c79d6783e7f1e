"""Schemathesis with every check against the HTTP backend's own OpenAPI document.

The real backend (uvicorn on 127.0.0.1, a token, a fresh environment's worker), the
schemathesis CLI as CI runs it: examples, coverage and fuzzing phases, positive and
negative data, deterministic and bounded (``EXAMPLES`` per operation). Expected
statuses that differ from schemathesis's defaults are in
``schemathesis-http-backend.toml``, each with its reason. The controller's document is
fuzzed in test_bad_input.py.
"""

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.http.support import ThreadServer, settings_for
from tests.reliability.summary import record

CONFIG = Path(__file__).with_name("schemathesis-http-backend.toml")
TOKEN = "t0ken-for-schemathesis-0123456789"
EXAMPLES = 20


@pytest.fixture
def backend(env_python: str) -> Iterator[ThreadServer]:
    server = ThreadServer(
        settings_for(env_python, token=TOKEN, max_sessions=16, kill_grace=0.3)
    ).start()
    yield server
    server.stop()


def test_every_check_passes_on_the_http_backend(
    backend: ThreadServer, tmp_path: Path
) -> None:
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(CONFIG),
        "run",
        f"http://127.0.0.1:{backend.port}/openapi.json",
        "--header",
        f"Authorization: Bearer {TOKEN}",
        "--checks",
        "all",
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        str(EXAMPLES),
        "--generation-deterministic",
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--no-color",
    ]
    # In tmp_path: the CLI leaves its cache (.schemathesis/) in its working directory.
    run = subprocess.run(
        command, capture_output=True, text=True, timeout=600, cwd=tmp_path
    )
    summary = run.stdout.rsplit("SUMMARY", 1)[-1].strip()
    record(
        "bad input",
        f"http backend OpenAPI, every schemathesis check: exit {run.returncode}",
        "http",
        "pass" if run.returncode == 0 else "FAIL",
    )
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-2000:]
    # Every operation of the document was tested.
    selected = re.search(r"Selected: (\d+)/(\d+)\s+Tested: (\d+)", summary)
    assert selected is not None, summary
    assert len(set(selected.groups())) == 1, summary

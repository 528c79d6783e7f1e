"""Docker runs each backend's ``healthcheck`` subcommand every 5 s in its container:
the modules it loads stay few (asyncio, logging and http.client were most of its CPU;
argparse, through shutil, bz2 and lzma, a quarter of what was left)."""

import subprocess
import sys

import pytest

HEAVY = (
    "asyncio", "logging", "http.client", "grpc", "pydantic", "fastapi", "argparse", "shutil",
)  # fmt: skip


@pytest.mark.parametrize("kind", ["pipe", "http", "rpc"])
def test_the_health_check_loads_no_heavy_module(kind: str) -> None:
    code = (
        "import sys\n"
        f"from beephost_{kind}_backend import __main__, healthcheck\n"
        f"print(sorted(name for name in {HEAVY!r} if name in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert done.stdout.strip() == "[]"

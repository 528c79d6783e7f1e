"""The server imports uvicorn's Config and Server only (``_uvicorn.py``): not its command
line (click), its reloaders (multiprocessing) or websockets, none of which it uses
before it answers; other code in the process still gets the whole package."""

import subprocess
import sys

CODE = """
import sys
import beephost_http_backend.server
skipped = [m for m in ("click", "multiprocessing", "websockets") if m in sys.modules]
assert not skipped, skipped
import uvicorn
assert callable(uvicorn.run) and uvicorn.__version__
assert uvicorn.Config is beephost_http_backend.server.Config
assert "click" in sys.modules
"""


def test_the_server_imports_neither_the_cli_nor_websockets() -> None:
    subprocess.run([sys.executable, "-c", CODE], check=True, timeout=120)

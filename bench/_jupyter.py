"""A Jupyter kernel (ipykernel) as a bench server, and a notebook-style execute client.

Used by bench/transports.py and bench/plots.py: ``KernelServer`` starts the kernel
through ``jupyter_client.KernelManager`` (a separate process, in its own session, polling
for our death through JPY_PARENT_PID), under this interpreter or another one (a kernel
spec of its own, written to the run's directory), and stops it; ``KernelEval`` runs
``kc.execute("1+1")`` and waits, as a notebook client does, for the execute_reply on
the shell channel and the kernel's ``idle`` status on iopub, checking the result.
"""

import contextlib
import json
import subprocess
import time
from pathlib import Path
from typing import Any

from bench import pipe_roundtrip
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

TIMEOUT_S = 30.0


class KernelServer:
    def __init__(self, name: str, tmp: Path, python: str | None = None) -> None:
        """``python``: the kernel's interpreter (with ipykernel); None: this one's."""
        self.name = name
        self.log_path = tmp / f"{name}.log"
        connection_file = str(tmp / f"{name}-connection.json")
        if python is None:
            self.manager = KernelManager(
                kernel_name="python3", connection_file=connection_file
            )
        else:
            specs = tmp / f"{name}-kernels"
            self.manager = KernelManager(
                kernel_name=name,
                connection_file=connection_file,
                kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(specs)]),
            )
            write_spec(specs / name, python)
        self.process: subprocess.Popen[bytes] | None = None
        self.client: BlockingKernelClient | None = None

    def start(self) -> None:
        with self.log_path.open("wb") as log:
            self.manager.start_kernel(
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        provisioner: Any = self.manager.provisioner
        self.process = getattr(provisioner, "process", None)
        client: BlockingKernelClient = self.manager.client()
        client.start_channels()
        self.client = client

    def probe(self) -> bool:
        assert self.client is not None
        self.client.wait_for_ready(timeout=0.5)  # RuntimeError until it answers
        return True

    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def log_tail(self, size: int = 2000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_bytes()[-size:].decode("utf-8", "replace")
        return ""

    def remember_descendants(self) -> None:
        pass  # the kernel runs the code itself

    def cpu_ns(self) -> tuple[int, int]:
        if self.process is None:
            return 0, 0
        return pipe_roundtrip.cpu_ns([self.process.pid]), 0

    def stop(self) -> None:
        if self.client is not None:
            with contextlib.suppress(Exception):
                self.client.stop_channels()
        with contextlib.suppress(Exception):
            if self.manager.has_kernel:
                self.manager.shutdown_kernel(now=True)
        process = self.process
        if process is not None and process.poll() is None:  # shutdown failed: kill
            process.kill()
            process.wait(5)


def write_spec(directory: Path, python: str) -> None:
    """A kernel spec that runs ipykernel under ``python``."""
    directory.mkdir(parents=True)
    spec = {
        "argv": [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": directory.name,
        "language": "python",
    }
    (directory / "kernel.json").write_text(json.dumps(spec))


class KernelEval:
    """One notebook-style execute round trip per request: reply, result, then idle."""

    def __init__(self, server: KernelServer) -> None:
        assert server.client is not None
        self.kc = server.client

    def block(self, count: int) -> list[int]:
        clock, kc = time.perf_counter_ns, self.kc
        latencies = []
        for _ in range(count):
            started = clock()
            msg_id = kc.execute("1+1")
            while True:
                reply = kc.get_shell_msg(timeout=TIMEOUT_S)
                if reply["parent_header"].get("msg_id") == msg_id:
                    break
            result = None
            while True:
                message = kc.get_iopub_msg(timeout=TIMEOUT_S)
                if message["parent_header"].get("msg_id") != msg_id:
                    continue
                kind, content = message["msg_type"], message["content"]
                if kind == "execute_result":
                    result = content["data"].get("text/plain")
                elif kind == "status" and content["execution_state"] == "idle":
                    break
            latencies.append(clock() - started)
            if reply["content"]["status"] != "ok" or result != "2":
                raise RuntimeError(f"unexpected reply {reply['content']!r}, {result!r}")
        return latencies

    def close(self) -> None:
        pass  # the channels belong to the KernelServer

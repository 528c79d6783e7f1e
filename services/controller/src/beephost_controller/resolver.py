"""Resolve an environment's requirements into a hash-locked list with uv, for its CPython.

Resolution runs on the controller's host (network, the index, an extra CA bundle), never
inside an image build: builds install offline from the lock.
"""

import hashlib
import subprocess
from dataclasses import dataclass

from uv import find_uv_bin

from beephost_controller.engine.tool_env import tool_environment
from beephost_controller.engine.tool_exit import killed_words

# Wheels must run in the Debian-based images on x86-64 (glibc 2.36 and newer).
PLATFORM = "x86_64-manylinux_2_28"
#: What to do when uv ran out of memory resolving.
_ADVICE = "resolve fewer requirements or raise the controller's memory"


class ResolutionError(Exception):
    """uv could not resolve the requirements; ``str()`` is uv's own explanation."""


@dataclass(frozen=True)
class Lock:
    """Pinned, hash-checked requirements (``uv pip compile --generate-hashes`` output)."""

    text: str

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    @property
    def empty(self) -> bool:
        return not any(
            line.strip() and not line.startswith("#") for line in self.text.splitlines()
        )


def resolve(
    requirements: list[str],
    python: str,
    *,
    index_url: str | None = None,
    ca_bundle: str | None = None,
    timeout: float = 300.0,
    uv: str | None = None,
) -> Lock:
    """Lock ``requirements`` for CPython ``python`` (``"3.13"``) on manylinux x86-64.

    Args:
        requirements: requirement specifiers (``numpy>=2``, ``attrs==25.*``).
        python: The environment's CPython minor version.
        index_url: A package index other than PyPI.
        ca_bundle: An extra CA bundle for a TLS-intercepting proxy.
        timeout: Seconds before the resolution is abandoned.
        uv: The uv executable (default: the controller's own).

    Raises:
        ResolutionError: With uv's error text (unknown package, conflict, network),
            or why a signal ended uv (out of memory: SIGKILL).
    """
    if not requirements:
        return Lock("")
    command = [
        uv or find_uv_bin(), "pip", "compile", "-", "--quiet", "--no-header", "--generate-hashes",
        "--python-version", python, "--python-platform", PLATFORM,
    ]  # fmt: skip
    # No uv.toml of the working directory decides what is resolved, or where from.
    command.append("--no-config")
    if index_url:
        command += ["--index-url", index_url]
    # Never the controller's environment (its token): uv expands ${VAR} in requirements.
    extra = {"SSL_CERT_FILE": ca_bundle, "UV_NATIVE_TLS": "1"} if ca_bundle else {}
    env = tool_environment(extra)
    try:
        done = subprocess.run(
            command,
            input="\n".join(requirements) + "\n",
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ResolutionError(f"resolution took longer than {timeout}s") from None
    killed = killed_words("the resolver", done.returncode, _ADVICE)
    if killed is not None:
        raise ResolutionError(killed)
    if done.returncode != 0:
        raise ResolutionError(
            done.stderr.strip() or f"uv exited with {done.returncode}"
        )
    return Lock(done.stdout)

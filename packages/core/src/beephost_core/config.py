"""Limits and knobs of the execution core, set by each backend from its settings."""

import dataclasses
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field

# The backends' own settings: never handed to user code, even on purpose (the token!).
SERVER_ENV_PREFIXES = (
    "BEEPHOST_PIPE_BACKEND_",
    "BEEPHOST_HTTP_BACKEND_",
    "BEEPHOST_RPC_BACKEND_",
)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def base_interpreter() -> str:
    """The interpreter under the server's virtualenv: it sees none of the server's packages."""
    return getattr(sys, "_base_executable", None) or sys.executable


@dataclass(frozen=True, slots=True)
class ExecutorConfig:
    """Everything the core needs; all limits are configurable per backend.

    Attributes:
        python: The environment's interpreter that runs session workers.
        environment: The environment's name, reported by session info.
        default_timeout: Seconds a request may run when it names no deadline.
        max_timeout: Upper bound on any requested deadline.
        kill_grace: Seconds an interrupted worker gets to stop before it is killed.
        max_sessions: Open sessions, the default session included.
        session_ttl: Idle seconds before a session (not the default one) expires.
        max_session_ttl: Upper bound on a requested TTL.
        max_handles: Live handles per session.
        lease_ttl: Seconds without a request or renewal after which a lease expires and
            the ``default`` session's handles it owns are released.
        max_output_bytes: Captured stdout and stderr per request, each.
        max_result_bytes: Encoded reply size per request.
        max_display_bytes: Size of each MIME value of a rich output (a PNG's base64
            text, an HTML table); a larger one is left out and named in the output.
        max_display_total_bytes: Rich outputs of one request together; past it,
            outputs keep only a note saying what was left out.
        spawn_timeout: Seconds a new worker has to announce itself.
        prewarm: Spare workers kept started so sessions open instantly, from the
            first ``session.open`` on (until then only the default session's runs).
        cwd: Working directory of workers (None: the workspace).
        workspace: The directory of user files the file commands serve, also the
            workers' HOME (None: a temporary directory, removed when the executor
            closes).
        workspace_quota: The most bytes the workspace's files may take (0: no limit);
            no single file a worker writes may be larger either (RLIMIT_FSIZE).
        packages: A directory appended to workers' sys.path (and their subprocesses'
            PYTHONPATH): packages installed at run time (None: none). It is made if
            missing, so that workers started before an install see it.
        env: Environment variables of workers; the server's own are never passed.
        extra_env: Variables added to ``env`` for every worker (they win over it): what
            the deployment gives user code on purpose, e.g. an admin backend's controller
            URL and token.
        egress_socket: The egress proxy's Unix socket (None: no relay); while the
            executor runs, ``127.0.0.1:egress_port`` is relayed to it.
        egress_port: The loopback port user code's proxy variables name.
    """

    python: str = field(default_factory=base_interpreter)
    environment: str = "local"
    default_timeout: float = 30.0
    max_timeout: float = 3600.0
    kill_grace: float = 2.0
    max_sessions: int = 64
    session_ttl: float = 600.0
    max_session_ttl: float = 86400.0
    max_handles: int = 1000
    lease_ttl: float = 60.0
    max_output_bytes: int = 1 << 20
    max_result_bytes: int = 16 << 20
    max_display_bytes: int = 4 << 20
    max_display_total_bytes: int = 8 << 20
    spawn_timeout: float = 20.0
    prewarm: int = 1
    cwd: str | None = None
    workspace: str | None = None
    workspace_quota: int = 1 << 30
    packages: str | None = None
    activity_file: str | None = None
    env: dict[str, str] = field(default_factory=lambda: default_worker_env())
    extra_env: Mapping[str, str] = field(default_factory=dict)
    egress_socket: str | None = None
    egress_port: int = 3128

    def worker_env(self) -> dict[str, str]:
        """The environment a worker starts with: ``env`` updated with ``extra_env``."""
        paths = {"PYTHONPATH": self.packages} if self.packages else {}
        return {**self.env, **paths, **self.extra_env}

    def in_workspace(self, root: str) -> "ExecutorConfig":
        """This config with its workers started in the workspace ``root``, which is
        also their HOME, unless it names another working directory or HOME."""
        return dataclasses.replace(
            self,
            cwd=self.cwd or root,
            extra_env={"HOME": root, **self.extra_env},
        )

    def worker_settings(self) -> dict[str, int | float | list[str]]:
        """The subset the worker enforces itself."""
        return {
            "max_handles": self.max_handles,
            "max_output_bytes": self.max_output_bytes,
            "max_result_bytes": self.max_result_bytes,
            "max_display_bytes": self.max_display_bytes,
            "max_display_total_bytes": self.max_display_total_bytes,
            "max_file_bytes": self.workspace_quota,
            "sys_path": [self.packages] if self.packages else [],
        }


def refused_worker_env_name(name: str) -> str | None:
    """Why ``name`` may not be a variable the deployment gives user code, or None."""
    if not _ENV_NAME.fullmatch(name):
        return f"not an environment variable name: {name!r}"
    # Names are read case-insensitively: beephost_pipe_backend_token is the token.
    if name.upper().startswith(SERVER_ENV_PREFIXES):
        return f"{name} is a backend setting: it is never passed to user code"
    return None


def checked_worker_env(loaded: object, source: str = "WORKER_ENV") -> dict[str, str]:
    """``loaded`` (parsed JSON) as variables the deployment may give user code.

    Raises:
        ValueError: Not an object of strings, or a name refused (the message says
            which, never a value: values are credentials).
    """
    if not isinstance(loaded, dict) or not all(
        isinstance(key, str) and isinstance(value, str) for key, value in loaded.items()
    ):
        raise ValueError(f"{source} must hold a JSON object of strings")
    for name in loaded:
        if (refusal := refused_worker_env_name(name)) is not None:
            raise ValueError(refusal)
    return loaded


def default_worker_env() -> dict[str, str]:
    """A minimal environment: secrets in the server's environment never reach user code."""
    keep = ("LANG", "LC_ALL", "TZ", "HOME")
    env = {key: os.environ[key] for key in keep if key in os.environ}
    # The server's own virtualenv stays off the workers' PATH: `python3` run by user code
    # (subprocess) must be the environment's, never one that can import the server.
    server_bin = (
        os.path.dirname(sys.executable) if sys.prefix != sys.base_prefix else None
    )
    path = os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin").split(os.pathsep)
    env["PATH"] = os.pathsep.join(
        p for p in path if p and os.path.abspath(p) != server_bin
    )
    return env

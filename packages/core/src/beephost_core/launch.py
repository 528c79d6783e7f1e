"""How a worker process is started: its command line, environment and directory.

One definition for the two ways a worker starts: spawned by the executor
(``beephost_core._process``), or started early, before the server's settings are
validated (``beephost_core.early_worker``); an early worker serves only if its launch is
the one the executor would have made.
"""

from dataclasses import dataclass
from pathlib import Path

from beephost_core import _bytecode
from beephost_core.config import ExecutorConfig

WORKER_SCRIPT = str(Path(__file__).with_name("worker.py"))

#: The worker's second argument when its settings follow as the first line on its
#: socket (an early worker's, which were not known when it started).
SETTINGS_FOLLOW = "-"


@dataclass(frozen=True, slots=True)
class Launch:
    """A worker's process as ``exec`` starts it: what cannot change once it runs.

    The environment is kept in order: it is the order user code's ``os.environ`` has.
    """

    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    cwd: str | None

    @classmethod
    def of(cls, config: ExecutorConfig) -> "Launch":
        python = config.python
        return cls(
            # -I, isolated: no PYTHON* variables, no user site, no script directory.
            argv=(python, "-I", _bytecode.program(python, WORKER_SCRIPT)),
            env=tuple(config.worker_env().items()),
            cwd=config.cwd,
        )

    def command(self, fd: int, settings: str) -> list[str]:
        """The command line of a worker talking over ``fd``, with its ``settings``
        (JSON, or ``SETTINGS_FOLLOW``)."""
        return [*self.argv, str(fd), settings]

    @property
    def environment(self) -> dict[str, str]:
        return dict(self.env)

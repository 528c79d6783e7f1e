"""Packages installed at run time: a directory on the workers' sys.path that sessions
already running see at their next import, after the environment's own packages."""

import subprocess
import sys
from pathlib import Path

from beephost_core import packages
from beephost_protocol import Evaluate, Execute, SessionOpen
from tests.integration.core.conftest import MakeExecutor


async def test_an_existing_session_imports_what_was_installed_since(
    make_executor: MakeExecutor, tmp_path: Path
) -> None:
    root = tmp_path / "packages"
    site = root / "site"  # missing: the executor makes it
    executor = await make_executor(packages=str(site))
    opened = await executor.run(SessionOpen())
    session = opened["session"]
    missing = await executor.run(
        Execute(
            code="try:\n    import tabulous\nexcept ImportError:\n    print('none')\n"
        )
    )
    assert missing["stdout"] == "none\n"
    staged = root / ".staging-1"
    (staged / "tabulous").mkdir(parents=True)
    (staged / "tabulous" / "__init__.py").write_text("VERSION = '1.0'\n")
    packages.activate(root, staged.name)

    for where in ("default", session):
        value = await executor.run(
            Evaluate(expression="__import__('tabulous').VERSION", session=where)
        )
        assert value["value"] == "1.0"
    # The environment's packages come first; subprocesses get the directory too.
    ordering = await executor.run(
        Execute(
            code="import subprocess, sys\n"
            "r = subprocess.run([sys.executable, '-c', 'import tabulous, sys; "
            "print(tabulous.VERSION)'], capture_output=True, text=True)\n"
            "(sys.path[-1], r.stdout.strip())"
        )
    )
    assert ordering["value"] == {"$tuple": [str(site), "1.0"]}


def test_the_activation_command_runs_as_a_module(tmp_path: Path) -> None:
    (tmp_path / "site").mkdir()
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "beephost_core.packages",
            "list",
            str(tmp_path / "site"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout == '{"installed": []}\n'

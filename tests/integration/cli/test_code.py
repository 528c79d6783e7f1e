"""``beep-host eval`` and ``exec`` against real pipe and HTTP backend processes."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from beephost_cli.main import app
from tests.integration.cli.support import subprocess_env
from tests.integration.contract.servers import TOKEN, ServerProcess
from tests.results import exec_result

KINDS = ("pipe", "http")


def cli(backend: ServerProcess, *args: str, input: str | None = None) -> Result:
    target = ["--url", backend.url, "--token", TOKEN]
    command, *rest = args
    return CliRunner().invoke(app, [command, *target, *rest], input=input)


@pytest.mark.parametrize("kind", KINDS)
def test_eval_prints_the_value(backends: dict[str, ServerProcess], kind: str) -> None:
    result = cli(backends[kind], "eval", "(sum(range(10)), b'\\x00', 'é')")
    assert result.exit_code == 0, result.output
    assert result.stdout == "(45, b'\\x00', 'é')\n"
    as_json = cli(
        backends[kind], "eval", "--json", "{'a': [1.5, None], 2: float('inf')}"
    )
    assert json.loads(as_json.stdout) == {
        "value": {"$map": [["a", [1.5, None]], [2, {"$float": "inf"}]]}
    }
    proxy = cli(backends[kind], "eval", "--json", "object()")
    assert json.loads(proxy.stdout)["value"]["$handle"]["type"] == "object"


@pytest.mark.parametrize("kind", KINDS)
def test_exec_streams_and_prints_the_trailing_value(
    backends: dict[str, ServerProcess], kind: str, tmp_path: Path
) -> None:
    code = "import sys\nprint('to out')\nprint('to err', file=sys.stderr)\n6 * 7"
    result = cli(backends[kind], "exec", code)
    assert result.exit_code == 0, result.output
    assert result.stdout == "to out\n42\n"
    assert result.stderr == "to err\n"
    script = tmp_path / "script.py"
    script.write_text("total = sum(range(5))\nprint(total)\ndone = True\n")
    from_file = cli(backends[kind], "exec", "-f", str(script), "--json")
    assert json.loads(from_file.stdout) == exec_result(
        stdout="10\n", outputs=[], outputs_dropped=0
    )
    # A trailing None is not printed, as in the REPL.
    from_stdin = cli(backends[kind], "exec", "-", input="print('piped')\n")
    assert from_stdin.stdout == "piped\n"


@pytest.mark.parametrize("kind", KINDS)
def test_a_remote_exception_prints_its_traceback(
    backends: dict[str, ServerProcess], kind: str
) -> None:
    result = cli(backends[kind], "exec", "def f():\n    return 1 / 0\nf()")
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert "return 1 / 0" in result.stderr
    assert lines[-1] == "error: ZeroDivisionError: division by zero"
    assert result.stdout == ""


def test_errors_of_the_backend(backends: dict[str, ServerProcess]) -> None:
    http = backends["http"]
    no_token = CliRunner().invoke(app, ["eval", "--url", http.url, "1"])
    assert no_token.exit_code == 1
    assert no_token.stderr.splitlines()[-1] == (
        "hint: pass the backend's token in BEEPHOST_BACKEND_TOKEN or --token-file "
        "(`beep-host connection ID` prints it)"
    )
    slow = cli(http, "eval", "--timeout", "0.5", "__import__('time').sleep(5)")
    assert slow.exit_code == 1
    assert slow.stderr.startswith("error: ")
    assert "hint: pass a longer --timeout" in slow.stderr
    down = CliRunner().invoke(app, ["eval", "--url", "unix:///tmp/bh-nobody.sock", "1"])
    assert down.exit_code == 1
    assert down.stderr.splitlines()[-1] == (
        "hint: is the backend running? `beep-host status` lists the backends"
    )


def test_exec_as_a_child_process(backends: dict[str, ServerProcess]) -> None:
    pipe = backends["pipe"]
    args = [
        sys.executable,
        "-m",
        "beephost_cli",
        "exec",
        "--url",
        pipe.url,
        "--token",
        TOKEN,
    ]
    ok = subprocess.run(
        [*args, "-"],
        input="for i in range(3): print(i)\n",
        env=subprocess_env(None),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, "0\n1\n2\n", "")
    failed = subprocess.run(
        [*args, "raise KeyError('k')"],
        env=subprocess_env(None),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert failed.returncode == 1
    assert failed.stderr.splitlines()[-1] == "error: KeyError: 'k'"


def test_the_token_from_a_file_or_the_environment(
    backends: dict[str, ServerProcess], tmp_path: Path
) -> None:
    http = backends["http"]
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    args = ["eval", "--url", http.url, "--token-file", str(token_file), "6 * 7"]
    by_file = CliRunner().invoke(app, args)
    assert (by_file.exit_code, by_file.stdout) == (0, "42\n"), by_file.output
    by_env = CliRunner().invoke(
        app, ["eval", "--url", http.url, "6 * 7"], env={"BEEPHOST_BACKEND_TOKEN": TOKEN}
    )
    assert (by_env.exit_code, by_env.stdout) == (0, "42\n"), by_env.output
    both = CliRunner().invoke(
        app, [*args[:-1], "--token", TOKEN, "1"], env={"BEEPHOST_BACKEND_TOKEN": ""}
    )
    assert both.exit_code == 2
    assert "not both" in both.output
    token_file.write_text("\n")
    empty = CliRunner().invoke(app, args)
    assert empty.exit_code == 2
    assert "is empty" in empty.output

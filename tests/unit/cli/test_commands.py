"""Every command's output, exit code and error line, over a fake controller (no sockets)."""

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

import beephost_client as bc
from beephost_cli.main import app
from beephost_cli.state import State
from beephost_protocol import Command, Evaluate, Execute
from tests.results import exec_result
from tests.unit.cli.fake import FakeController

ENV = {"COLUMNS": "200", "BEEPHOST_CONTROLLER_URL": None, "BEEPHOST_TOKEN": None}


@pytest.fixture
def fake() -> FakeController:
    return FakeController()


def backend_handler(command: Command) -> dict[str, Any]:
    if isinstance(command, Evaluate):
        if command.expression == "1/0":
            raise bc.ExecutionFailed(
                "division by zero",
                {
                    "type": "ZeroDivisionError",
                    "traceback": "Traceback (most recent call last):\n"
                    '  File "<eval>", line 1, in <module>\n'
                    "ZeroDivisionError: division by zero\n",
                },
            )
        return {"value": {"$tuple": [1, "two", {"$bytes": "AAE="}]}}
    assert isinstance(command, Execute)
    return {"stdout": "out\n", "stderr": "err\n", "value": 42, "has_value": True}


def invoke(fake: FakeController, *args: str, input: str | None = None) -> Result:
    clients: list[tuple[str, str | None]] = []

    def make_client(url: str, token: str | None) -> bc.Client:
        clients.append((url, token))
        return bc.Client(transport=bc.MockTransport(backend_handler))

    state = State(make_controller=fake.client, make_client=make_client)
    result = CliRunner().invoke(app, list(args), obj=state, env=ENV, input=input)
    result.clients = clients  # type: ignore[attr-defined]  # for the eval/exec tests
    return result


def error_lines(result: Result) -> list[str]:
    return [
        line
        for line in result.stderr.splitlines()
        if line.startswith(("error:", "hint:"))
    ]


def failure_lines(result: Result) -> list[str]:
    """The error and hint lines of a command that failed as it should: exit code 1."""
    assert result.exit_code == 1, result.output
    return error_lines(result)


def test_help_and_usage_errors_exit_2(fake: FakeController) -> None:
    assert invoke(fake, "--help").exit_code == 0
    assert invoke(fake).exit_code == 2  # no command: help, as a usage error
    assert invoke(fake, "frobnicate").exit_code == 2
    assert invoke(fake, "venv", "create").exit_code == 2  # NAME missing
    assert invoke(fake, "start", "ftp").exit_code == 2
    assert invoke(fake, "init", "--python").exit_code == 2
    bad_url = invoke(fake, "--controller", "ftp://x", "runtimes")
    assert bad_url.exit_code == 2
    assert "not an http(s) URL" in bad_url.stderr


@pytest.mark.parametrize(
    ("command", "waits_for"),
    [
        (["start"], "until the backend is ready"),
        (["init"], "for the job"),
        (["install"], "for the job"),
        (["venv", "create"], "for the job"),
        (["venv", "admin"], "for the job"),
    ],
)
def test_no_wait_says_what_the_command_waits_for(
    fake: FakeController, command: list[str], waits_for: str
) -> None:
    result = invoke(fake, *command, "--help")
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.replace("│", " ").split())
    assert f"Wait {waits_for}" in text


def test_runtimes_table_and_json_in_either_position(fake: FakeController) -> None:
    table = invoke(fake, "runtimes")
    assert table.exit_code == 0, table.output
    assert table.stdout.split()[:5] == [
        "PYTHON",
        "VERSION",
        "INITIALISED",
        "SOURCE",
        "IMAGE",
    ]
    assert "3.13" in table.stdout
    for args in (("--json", "runtimes"), ("runtimes", "--json")):
        result = invoke(fake, *args)
        assert [r["python"] for r in json.loads(result.stdout)] == ["3.11", "3.13"]
        assert result.stderr == ""


def test_init_follows_the_job_and_prints_the_runtime(fake: FakeController) -> None:
    result = invoke(fake, "init", "--python", "3.11")
    assert result.exit_code == 0, result.output
    assert "importing rootfs" in result.stderr  # the build log, live, on stderr
    assert "✓ initialising runtime 3.11: done" in result.stderr
    assert "3.11.2" in result.stdout
    assert "importing rootfs" not in result.stdout
    queued = invoke(fake, "--json", "init", "--no-wait")
    assert json.loads(queued.stdout)["status"] == "queued"
    assert "beep-host jobs wait job-2" in queued.stderr


def test_init_of_an_unknown_runtime(fake: FakeController) -> None:
    result = invoke(fake, "init", "--python", "2.7")
    assert failure_lines(result) == [
        "error: no runtime '2.7'",
        "hint: check the arguments (--help describes them)",
    ]


def test_venv_create_sends_packages_and_requirements_file(
    fake: FakeController, tmp_path: Path
) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("attrs\n")
    result = invoke(
        fake,
        "venv",
        "create",
        "data",
        "six",
        "numpy<3",
        "-r",
        str(requirements),
        "--python",
        "3.13",
        "--network",
    )
    assert result.exit_code == 0, result.output
    sent = fake.requests[0].json()
    assert sent == {
        "name": "data",
        "python": "3.13",
        "requirements": ["six", "numpy<3"],
        "requirements_txt": "attrs\n",
        "network": True,
    }
    assert "building environment data ..." in result.stderr
    assert "│ installing [extras]" in result.stderr  # rich markup is not interpreted
    assert "ready" in result.stdout
    assert "attrs, numpy<3, six" in result.stdout


def test_venv_create_from_stdin_json_and_no_wait(fake: FakeController) -> None:
    result = invoke(
        fake, "venv", "create", "x", "-r", "-", "--json", "--no-wait", input="six\n"
    )
    assert result.exit_code == 0, result.output
    env = json.loads(result.stdout)
    assert (env["name"], env["status"], env["requirements"]) == (
        "x",
        "pending",
        ["six"],
    )
    assert "jobs wait job-1" in result.stderr
    assert not any(r.path.endswith("/log/stream") for r in fake.requests)


def test_venv_create_conflict_and_exist_ok(fake: FakeController) -> None:
    fake.add_environment("data")
    result = invoke(fake, "venv", "create", "data", "six")
    assert failure_lines(result) == [
        "error: environment 'data' exists",
        "hint: pick another name, pass --exist-ok for the same definition, or delete it "
        "first: `beep-host venv delete data`",
    ]
    assert result.stdout == ""
    again = invoke(fake, "venv", "create", "data", "--exist-ok")
    assert again.exit_code == 0
    assert fake.requests[-1].method == "PUT"


def test_venv_create_failed_build(fake: FakeController) -> None:
    fake.build_fails = "resolution failed: no such package zz"
    result = invoke(fake, "venv", "create", "bad", "zz")
    assert result.exit_code == 1
    assert "│ resolution failed: no such package zz" in result.stderr
    errors = error_lines(result)
    assert errors[0] == (
        "error: building environment bad failed: resolution failed: no such package zz"
    )
    assert errors[1].startswith("hint: fix the requirements")


def test_venv_missing_requirements_file_is_a_usage_error(fake: FakeController) -> None:
    result = invoke(fake, "venv", "create", "x", "-r", "/nonexistent/req.txt")
    assert result.exit_code == 2
    assert "cannot read /nonexistent/req.txt" in result.stderr


def test_venv_list_status_delete(fake: FakeController) -> None:
    empty = invoke(fake, "venv", "list")
    assert (empty.exit_code, empty.stdout) == (0, "")
    assert "no environments yet" in empty.stderr
    assert invoke(fake, "venv", "create", "data", "six").exit_code == 0
    listed = invoke(fake, "venv", "list")
    assert listed.stdout.split()[:6] == [
        "NAME",
        "PYTHON",
        "STATUS",
        "REQUIREMENTS",
        "EGRESS",
        "AGE",
    ]
    assert "data" in listed.stdout
    status = invoke(fake, "venv", "status", "data", "--log")
    assert "beephost/env:data" in status.stdout
    assert status.stdout.rstrip().endswith("installing [extras]")
    as_json = json.loads(
        invoke(fake, "venv", "status", "data", "--log", "--json").stdout
    )
    assert as_json["log"] == ["resolving for data", "installing [extras]"]
    assert invoke(fake, "venv", "delete", "data").exit_code == 0
    missing = invoke(fake, "venv", "status", "data")
    assert failure_lines(missing) == [
        "error: no environment 'data'",
        "hint: `beep-host venv list` lists the environments",
    ]


def test_venv_delete_with_backends(fake: FakeController) -> None:
    fake.add_environment("data")
    assert invoke(fake, "start", "pipe", "--venv", "data").exit_code == 0
    result = invoke(fake, "venv", "delete", "data")
    assert failure_lines(result)[1].startswith("hint: stop its backends first")


def test_venv_admin_builds_once(fake: FakeController) -> None:
    first = invoke(fake, "venv", "admin")
    assert first.exit_code == 0, first.output
    assert "building environment admin" in first.stderr
    second = invoke(fake, "--json", "venv", "admin")
    assert json.loads(second.stdout)["admin"] is True


def test_start_waits_and_prints_endpoint_and_token(fake: FakeController) -> None:
    fake.add_environment("admin")
    result = invoke(fake, "start", "http", "--port", "5005", "--memory", "256")
    assert result.exit_code == 0, result.output
    assert "starting http backend b1 for admin: starting" in result.stderr
    assert "✓ backend b1 is ready" in result.stderr
    assert "http://127.0.0.1:5005" in result.stdout
    assert "s3cret" in result.stdout
    assert "256 MiB" in result.stdout
    assert fake.requests[0].json() == {
        "environment": "admin",
        "type": "http",
        "port": 5005,
        "limits": {"memory_mb": 256},
    }
    fake.backend_states = ["starting", "ready"]
    as_json = json.loads(
        invoke(fake, "start", "rpc", "--json", "--token", "mine").stdout
    )
    assert (as_json["token"], as_json["status"]) == ("mine", "ready")
    assert as_json["endpoint"].startswith("grpc://")


def test_start_without_the_environment(fake: FakeController) -> None:
    result = invoke(fake, "start", "pipe")
    assert failure_lines(result) == [
        "error: no environment 'admin'",
        "hint: make it with `beep-host venv admin`, or pass --venv NAME",
    ]
    other = invoke(fake, "start", "pipe", "--venv", "data")
    assert error_lines(other)[1].startswith(
        "hint: make it with `beep-host venv create data"
    )
    fake.add_environment("data", status="building")
    building = invoke(fake, "start", "pipe", "--venv", "data")
    assert error_lines(building) == [
        "error: environment 'data' is building, not ready",
        "hint: `beep-host venv status data --log` shows its build",
    ]


def test_start_on_a_controller_without_backends(fake: FakeController) -> None:
    fake.add_environment("admin")
    fake.backends_api = False
    result = invoke(fake, "start", "http")
    assert failure_lines(result) == [
        "error: the controller does not serve POST /api/v1/backends (HTTP 404): is it "
        "older than this client?",
        "hint: upgrade the controller, or use a client of its version",
    ]


def test_start_of_a_backend_that_exits(fake: FakeController) -> None:
    fake.add_environment("admin")
    fake.backend_states = ["starting", "exited"]
    result = invoke(fake, "start", "pipe")
    assert failure_lines(result) == [
        "error: backend b1 is exited: exit code 3",
        "hint: its output: `beep-host logs b1`",
    ]


def test_start_no_wait(fake: FakeController) -> None:
    fake.add_environment("admin")
    result = invoke(fake, "start", "http", "--no-wait", "--json")
    assert json.loads(result.stdout)["status"] == "starting"
    assert len(fake.requests) == 1


def test_piped_tables_keep_each_row_on_one_line(fake: FakeController) -> None:
    """No terminal and no COLUMNS: a script reads the table line by line."""
    fake.add_environment("admin")
    invoke(fake, "start", "http")
    long_endpoint = "https://" + "very-long-host-name." * 8 + "example:5678"
    fake.backends["b1"]["endpoint"] = long_endpoint
    fake.backends["b1"]["reason"] = "a reason long enough to need the space " * 3
    state = State(make_controller=fake.client)
    for args in (["status"], ["status", "b1"]):
        result = CliRunner().invoke(app, args, obj=state, env={**ENV, "COLUMNS": None})
        assert result.exit_code == 0, result.output
        lines = result.stdout.splitlines()
        assert any(long_endpoint in line for line in lines), result.stdout
        if args == ["status"]:
            assert len(lines) == 2, result.stdout  # the header and one row
            assert lines[1].split()[:2] == ["b1", "http"]


def test_status_stop_and_logs(fake: FakeController) -> None:
    fake.add_environment("admin")
    nothing = invoke(fake, "status")
    assert "no backends" in nothing.stderr
    invoke(fake, "start", "http")
    fake.backend_states = []
    invoke(fake, "start", "pipe", "--no-wait")
    table = invoke(fake, "status")
    assert table.stdout.split()[:7] == [
        "ID",
        "TYPE",
        "VENV",
        "STATUS",
        "ENDPOINT",
        "RESTARTS",
        "AGE",
    ]
    assert "b1" in table.stdout
    assert "b2" in table.stdout
    one = invoke(fake, "status", "b1", "--json")
    assert json.loads(one.stdout)["token"] is None  # only start shows it
    assert invoke(fake, "logs", "b1").stdout == "started\nserving [http]\n"
    assert json.loads(invoke(fake, "logs", "b1", "--json").stdout)["logs"].startswith(
        "started"
    )
    assert invoke(fake, "stop").exit_code == 2
    assert invoke(fake, "stop", "b1", "--all").exit_code == 2
    stopped = invoke(fake, "stop", "b1")
    assert "✓ stopped b1" in stopped.stderr
    missing = invoke(fake, "stop", "b1")
    assert error_lines(missing) == [
        "error: no backend 'b1'",
        "hint: `beep-host status` lists the backends",
    ]
    everything = invoke(fake, "--json", "stop", "--all")
    assert json.loads(everything.stdout) == {"stopped": ["b2"]}


def test_config(fake: FakeController) -> None:
    result = invoke(fake, "config")
    assert "controller http://127.0.0.1:8600" in result.stderr
    assert "default_python  3.11" in result.stdout
    assert '["3.11", "3.13"]' in result.stdout
    assert json.loads(invoke(fake, "config", "--json").stdout)["port"] == 8600


def test_global_options_reach_the_controller_factory(fake: FakeController) -> None:
    seen: list[tuple[str, str | None]] = []

    def make_controller(url: str, token: str | None) -> bc.ControllerClient:
        seen.append((url, token))
        return fake.client()

    state = State(make_controller=make_controller)
    env = {
        **ENV,
        "BEEPHOST_CONTROLLER_URL": "http://ctl:1",
        "BEEPHOST_TOKEN": "from-env",
    }
    CliRunner().invoke(app, ["runtimes"], obj=state, env=env)
    CliRunner().invoke(
        app, ["--controller", "http://x:2", "--token", "t", "runtimes"], obj=state
    )
    assert seen == [("http://ctl:1", "from-env"), ("http://x:2", "t")]


def test_eval_via_the_controller_prints_the_repr(fake: FakeController) -> None:
    fake.add_environment("admin")
    invoke(fake, "start", "http")
    result = invoke(fake, "eval", "--backend", "b1", "anything")
    assert result.exit_code == 0, result.output
    assert result.stdout == "(1, 'two', b'\\x00\\x01')\n"
    assert result.clients == [("http://127.0.0.1:5001", "s3cret")]  # type: ignore[attr-defined]
    as_json = invoke(fake, "eval", "--url", "http://b:1", "--token", "t", "x", "--json")
    assert json.loads(as_json.stdout) == {"value": [1, "two", {"$bytes": "AAE="}]}
    assert as_json.clients == [("http://b:1", "t")]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "command",
    [
        ["eval", "--backend", "b1", "1"],
        ["exec", "--backend", "b1", "pass"],
        ["ls", "b1:"],
    ],
)
def test_a_stopped_backend_is_explained_not_connected_to(
    fake: FakeController, command: list[str]
) -> None:
    fake.add_environment("admin")
    invoke(fake, "start", "http")
    fake.backends["b1"].update(status="stopped", reason="idle", idle_timeout=3600.0)
    result = invoke(fake, *command)
    assert failure_lines(result) == [
        "error: backend b1 is stopped: idle for 3600 s",
        "hint: its output: `beep-host logs b1`; start another: "
        "`beep-host start http --venv admin`",
    ]
    assert result.clients == []  # type: ignore[attr-defined]  # never tried


def test_eval_needs_exactly_one_target(fake: FakeController) -> None:
    assert invoke(fake, "eval", "1").exit_code == 2
    assert (
        invoke(fake, "eval", "--backend", "b", "--url", "http://x:1", "1").exit_code
        == 2
    )


def test_eval_remote_exception_prints_the_remote_traceback(
    fake: FakeController,
) -> None:
    result = invoke(fake, "eval", "--url", "http://b:1", "1/0")
    assert result.exit_code == 1
    assert result.stderr.startswith("Traceback (most recent call last):\n")
    assert error_lines(result) == ["error: ZeroDivisionError: division by zero"]
    assert result.stdout == ""


def test_exec_streams_output_then_the_value(
    fake: FakeController, tmp_path: Path
) -> None:
    result = invoke(fake, "exec", "--url", "http://b:1", "print('out')")
    assert result.exit_code == 0, result.output
    assert result.stdout == "out\n42\n"
    assert result.stderr == "err\n"
    script = tmp_path / "s.py"
    script.write_text("print('out')\n")
    from_file = invoke(fake, "exec", "--url", "http://b:1", "-f", str(script), "--json")
    assert json.loads(from_file.stdout) == exec_result(
        stdout="out\n",
        stderr="err\n",
        value=42,
        has_value=True,
        outputs=[],
        outputs_dropped=0,
    )
    stdin = invoke(fake, "exec", "--url", "http://b:1", "-", input="print(1)\n")
    assert stdin.exit_code == 0
    assert invoke(fake, "exec", "--url", "http://b:1").exit_code == 2
    assert invoke(fake, "exec", "--url", "ftp://b:1", "x").exit_code == 2

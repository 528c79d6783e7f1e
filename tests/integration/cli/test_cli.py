"""The real beep-host CLI against a real controller (uvicorn, SQLite, real HTTP).

In-process through typer's CliRunner, and as child processes (``python -m beephost_cli``
and the ``beep-host`` console script) for the exit codes and streams a shell sees.
"""

import json
import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner, Result

from beephost_cli.main import app
from beephost_client.controller import ControllerClient
from beephost_controller.testing import MemoryImageBuilder
from tests.integration.cli.support import (
    BIN,
    LiveController,
    live_controller,
    subprocess_env,
)
from tests.ports import free_port
from tests.unit.cli.test_commands import error_lines, failure_lines


def cli(controller: LiveController, *args: str, **env: str | None) -> Result:
    return CliRunner().invoke(app, list(args), env=controller.env(**env))


def test_init_follows_the_build_log(controller: LiveController) -> None:
    result = cli(controller, "init", "--python", "3.13")
    assert result.exit_code == 0, result.output
    assert "initialising runtime 3.13 ..." in result.stderr
    assert "│ importing rootfs for CPython 3.13" in result.stderr
    assert "│ runtime 3.13: CPython 3.13.0 in beephost/python:3.13" in result.stderr
    assert "version  3.13.0" in result.stdout
    runtimes = json.loads(cli(controller, "--json", "runtimes").stdout)
    assert {r["python"]: r["initialised"] for r in runtimes} == {
        "3.11": False,
        "3.13": True,
    }


def test_venv_lifecycle(controller: LiveController, tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# comment\nattrs\n")
    created = cli(controller, "venv", "create", "data", "six", "-r", str(requirements))
    assert created.exit_code == 0, created.output
    log = created.stderr
    assert "building environment data ..." in log
    steps = [
        "resolving 2 requirement(s)",
        "Step 1/3",
        "Step 2/3",
        "Step 3/3",
        "environment data ready",
    ]
    positions = [log.index(step) for step in steps]
    assert positions == sorted(positions)  # streamed in order
    assert "status        ready" in created.stdout
    assert "requirements  attrs, six" in created.stdout

    listed = cli(controller, "venv", "list")
    assert listed.stdout.splitlines()[1].split()[:4] == [
        "data",
        "3.11",
        "ready",
        "attrs,",
    ]
    status = cli(controller, "venv", "status", "data", "--log")
    assert status.exit_code == 0
    assert status.stdout.rstrip().endswith("environment data ready")
    as_json = json.loads(cli(controller, "venv", "status", "data", "--json").stdout)
    assert as_json["image"].startswith("beephost/env:")
    assert as_json["requirements"] == ["attrs", "six"]

    deleted = cli(controller, "venv", "delete", "data")
    assert deleted.exit_code == 0
    assert "✓ deleted environment data" in deleted.stderr
    gone = cli(controller, "venv", "status", "data")
    assert failure_lines(gone) == [
        "error: no environment 'data'",
        "hint: `beep-host venv list` lists the environments",
    ]


def test_conflicts_and_exist_ok(controller: LiveController) -> None:
    assert cli(controller, "venv", "create", "e", "six").exit_code == 0
    again = cli(controller, "venv", "create", "e", "six")
    error, hint = failure_lines(again)
    assert error == "error: environment 'e' exists"
    assert hint.startswith("hint: pick another name, pass --exist-ok")
    same = cli(controller, "venv", "create", "e", "six", "--exist-ok", "--json")
    assert same.exit_code == 0
    assert json.loads(same.stdout)["status"] == "ready"
    other = cli(controller, "venv", "create", "e", "attrs", "--exist-ok")
    assert (
        failure_lines(other)[0]
        == "error: environment 'e' exists with another definition"
    )


def test_failed_resolution_and_build(tmp_path: Path) -> None:
    with live_controller(tmp_path, MemoryImageBuilder(fail="disk full")) as controller:
        unresolvable = cli(controller, "venv", "create", "x", "no-such-pkg")
        assert failure_lines(unresolvable)[0] == (
            "error: building environment x failed: Because no-such-pkg was not found "
            "in the package registry"
        )
        broken = cli(controller, "venv", "create", "y", "six")
        assert broken.exit_code == 1
        assert "│ Step 3/3 : COPY" in broken.stderr
        assert (
            error_lines(broken)[0] == "error: building environment y failed: disk full"
        )
        assert error_lines(broken)[1].startswith("hint: fix the requirements")
        status = json.loads(cli(controller, "venv", "status", "y", "--json").stdout)
        assert (status["status"], status["error"]) == ("failed", "disk full")
        # --exist-ok retries the failed build, which fails again here.
        retried = cli(controller, "venv", "create", "y", "six", "--exist-ok")
        assert (
            error_lines(retried)[0] == "error: building environment y failed: disk full"
        )


def test_invalid_input_is_reported_with_the_controllers_message(
    controller: LiveController,
) -> None:
    bad_name = cli(controller, "venv", "create", "Bad Name")
    error, hint = failure_lines(bad_name)
    assert error.startswith(
        "error: body.name: Value error, 'Bad Name' is not a valid name: a name is "
        "1 to 63 characters: lowercase letters, digits"
    )
    assert hint == "hint: check the arguments (--help describes them)"
    bad_python = cli(controller, "init", "--python", "3.12")
    assert error_lines(bad_python)[0] == (
        "error: no runtime '3.12'; offered: 3.11, 3.13 (an operator offers another "
        "with the controller setting BEEPHOST_CONTROLLER_PYTHONS)"
    )


def test_no_wait_then_jobs(controller: LiveController) -> None:
    queued = cli(controller, "--json", "venv", "create", "later", "six", "--no-wait")
    assert queued.exit_code == 0, queued.output
    job_id = json.loads(queued.stdout)["job_id"]
    assert f"beep-host jobs wait {job_id}" in queued.stderr
    waited = cli(controller, "jobs", "wait", job_id)
    assert waited.exit_code == 0, waited.output
    assert "status  succeeded" in waited.stdout
    listed = json.loads(cli(controller, "jobs", "list", "--json").stdout)
    assert [job["id"] for job in listed] == [job_id]
    shown = cli(controller, "jobs", "status", job_id, "--log")
    assert shown.stdout.rstrip().endswith("environment later ready")
    missing = cli(controller, "jobs", "status", "job-nope")
    assert error_lines(missing) == [
        "error: no job 'job-nope'",
        "hint: `beep-host jobs list` lists the jobs",
    ]


def test_wait_timeout_says_how_to_follow_on(tmp_path: Path) -> None:
    with live_controller(tmp_path, MemoryImageBuilder(step_seconds=1.0)) as controller:
        result = cli(controller, "venv", "create", "slow", "six", "--timeout", "1")
        error, hint = failure_lines(result)
        assert error.startswith("error: job job-")
        assert error.endswith("did not finish within 1s")
        assert hint.startswith(
            "hint: it goes on: follow it with `beep-host jobs wait job-"
        )


def test_authentication(controller: LiveController) -> None:
    wrong = cli(controller, "venv", "list", BEEPHOST_TOKEN="wrong")
    assert failure_lines(wrong) == [
        "error: a valid bearer token is required",
        "hint: pass the controller's token with --token or BEEPHOST_TOKEN",
    ]
    flag = CliRunner().invoke(
        app,
        [
            "--controller",
            controller.url,
            "--token",
            controller.token or "",
            "venv",
            "list",
        ],
        env={"BEEPHOST_CONTROLLER_URL": None, "BEEPHOST_TOKEN": None},
    )
    assert flag.exit_code == 0, flag.output


def test_controller_not_running() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = CliRunner().invoke(app, ["--controller", url, "runtimes"])
    assert failure_lines(result) == [
        f"error: cannot connect to {url}: [Errno 111] Connection refused",
        "hint: is the controller running? start it with `beephost-controller`, or point "
        "--controller (BEEPHOST_CONTROLLER_URL) at it",
    ]
    assert result.stdout == ""


# -- as child processes -------------------------------------------------------------------


def run(
    args: list[str], env: dict[str, str], stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_console_script_and_module(controller: LiveController) -> None:
    env = subprocess_env(controller)
    created = run(
        [str(BIN / "beep-host"), "venv", "create", "sub", "-r", "-", "--json"],
        env,
        "six\n",
    )
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["requirements"] == ["six"]
    assert "│ Step 2/3 : RUN uv pip install" in created.stderr
    assert (
        "\x1b[" not in created.stderr
    )  # no colour codes when stderr is not a terminal
    listed = run([sys.executable, "-m", "beephost_cli", "--json", "venv", "list"], env)
    assert listed.returncode == 0, listed.stderr
    assert [e["name"] for e in json.loads(listed.stdout)] == ["sub"]
    assert listed.stderr == ""


def test_exit_codes_as_a_shell_sees_them(controller: LiveController) -> None:
    env = subprocess_env(controller)
    ok = run([str(BIN / "beep-host"), "runtimes"], env)
    assert (ok.returncode, ok.stderr) == (0, "")
    assert ok.stdout.splitlines()[0].split() == [
        "PYTHON",
        "VERSION",
        "INITIALISED",
        "SOURCE",
        "IMAGE",
    ]
    missing = run([str(BIN / "beep-host"), "venv", "status", "nope"], env)
    assert missing.returncode == 1
    assert missing.stderr.splitlines() == [
        "error: no environment 'nope'",
        "hint: `beep-host venv list` lists the environments",
    ]
    usage = run([sys.executable, "-m", "beephost_cli", "venv", "create"], env)
    assert usage.returncode == 2
    assert "Missing argument" in usage.stderr
    down = run(
        [str(BIN / "beep-host"), "runtimes"],
        subprocess_env(None, BEEPHOST_CONTROLLER_URL=f"http://127.0.0.1:{free_port()}"),
    )
    assert down.returncode == 1
    assert down.stderr.splitlines()[1].startswith("hint: is the controller running?")


def test_rich_and_grpc_are_imported_lazily() -> None:
    code = (
        "import sys, beephost_cli.main; "
        "assert 'rich' not in sys.modules and 'grpc' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_prune_and_the_disk_images_take(controller: LiveController) -> None:
    builder = controller.builder
    for name in ("keep", "drop"):
        made = cli(
            controller, "venv", "create", name, "six" if name == "keep" else "rich"
        )
        assert made.exit_code == 0, made.output
    assert len(builder.images) == 2
    status = cli(controller, "status")
    assert "environment images: 400.0 MiB on disk" in status.stderr
    builder.in_use.update(builder.images)  # a container holds each: kept at delete
    assert cli(controller, "venv", "delete", "drop").exit_code == 0
    assert "200.0 MiB unused (`beep-host prune`)" in cli(controller, "status").stderr
    dry = cli(controller, "prune", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "would free 200.0 MiB" in dry.stderr
    assert len(builder.images) == 2
    builder.in_use.clear()
    pruned = cli(controller, "--json", "prune")
    assert pruned.exit_code == 0, pruned.output
    report = json.loads(pruned.stdout)
    assert report["freed_bytes"] == builder.image_size
    assert len(report["removed"]) == 1
    assert len(builder.images) == 1
    again = cli(controller, "prune")
    assert "no unused images" in again.stderr


def test_everyone_goes_with_all(controller: LiveController) -> None:
    alone = cli(controller, "stop", "--everyone")
    assert alone.exit_code == 2
    with_ids = cli(controller, "stop", "b-1", "--everyone")
    assert with_ids.exit_code == 2
    assert "--everyone goes with --all" in with_ids.output
    nothing = cli(controller, "stop", "--all", "--everyone")
    assert nothing.exit_code == 0, nothing.output
    assert "no backends to stop" in nothing.stderr


def test_a_backend_that_exited_for_good_is_explained(tmp_path: Path) -> None:
    """The controller recorded why: eval says it, with no connection refused."""
    with live_controller(tmp_path, restart_limit=1, supervise_interval=0.05) as live:
        assert cli(live, "venv", "create", "data").exit_code == 0
        started = cli(live, "--json", "start", "http", "--venv", "data")
        assert started.exit_code == 0, started.output
        backend_id = json.loads(started.stdout)["id"]
        name = next(n for n in live.containers.containers if n.endswith(backend_id))

        def reaches(status: str) -> None:
            deadline = time.monotonic() + 10
            with ControllerClient(live.url, token=live.token) as controller:
                while (found := controller.backend(backend_id)).status != status:
                    assert time.monotonic() < deadline, found
                    time.sleep(0.02)
            assert found.restarts == 1

        live.containers.exit(name, 1)
        reaches("ready")  # the controller restarted it: its one restart
        live.containers.exit(name, 1)
        reaches("exited")  # for good: the limit is reached
        result = cli(live, "eval", "--backend", backend_id, "1")
    assert failure_lines(result) == [
        f"error: backend {backend_id} exited after 1 restart (crashed)",
        f"hint: its output: `beep-host logs {backend_id}`; start another: "
        "`beep-host start http --venv data`",
    ]

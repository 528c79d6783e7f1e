"""``--allow``, ``--secret``, ``beep-host secret`` and the policy in ``status``, through
the real CLI against a real controller (uvicorn, SQLite, real HTTP); the value of a
secret goes in on stdin and is never printed."""

import json
import re
import subprocess

from typer.testing import CliRunner, Result

from beephost_cli.main import app
from tests.integration.cli.support import BIN, LiveController, subprocess_env
from tests.unit.cli.test_commands import failure_lines

VALUE = "wk-9d8c7b6a5f4e3d2c1b0a"


def cli(controller: LiveController, *args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(app, list(args), input=stdin, env=controller.env())


def test_an_allow_list_from_the_command_line_is_shown_and_enforced(
    controller: LiveController,
) -> None:
    created = cli(
        controller,
        "venv",
        "create",
        "weather",
        "six",
        "--allow",
        "api.weather.example:443",
        "--allow",
        "203.0.113.0/24:8443,9443",
        "--allow",
        "[2001:db8::/32]",
        "--secret",
        "api.weather.example=weather-key;X-Api-Key: {secret}",
    )
    assert created.exit_code == 0, created.output
    assert (
        "egress        allow api.weather.example:443 (+X-Api-Key from secret "
        "weather-key), 203.0.113.0/24:8443,9443, [2001:db8::/32]:443,80"
    ) in created.stdout
    shown = json.loads(cli(controller, "venv", "status", "weather", "--json").stdout)
    assert shown["egress"]["mode"] == "allow_list"
    assert [e["ports"] for e in shown["egress"]["allow"]] == [
        [443],
        [8443, 9443],
        [443, 80],
    ]
    assert shown["egress"]["allow"][0]["secret"] == {
        "secret": "weather-key",
        "header": "X-Api-Key",
        "value": "{secret}",
    }
    listed = cli(controller, "venv", "list")
    assert listed.stdout.splitlines()[1].split()[4] == "allow_list"

    # Its secret is not stored yet: refused before the engine is asked.
    error, _hint = failure_lines(cli(controller, "start", "http", "--venv", "weather"))
    assert "not stored: weather-key" in error
    stored = cli(controller, "secret", "set", "weather-key", stdin=VALUE + "\n")
    assert stored.exit_code == 0, stored.output
    assert "secret weather-key stored" in stored.stderr
    # Docker enforces it: the backend runs behind the egress proxy, and its status
    # shows the last connections the proxy refused it.
    behind = cli(controller, "--json", "start", "http", "--venv", "weather")
    assert behind.exit_code == 0, behind.output
    proxied = json.loads(behind.stdout)["id"]
    proxy = f"beephost-{controller_name(controller)}-egress"
    controller.containers.output[proxy] = refusal_log(proxied)
    status = cli(controller, "status", proxied)
    assert status.exit_code == 0, status.output
    assert "egress refusals (last 1):" in status.stdout
    assert re.search(
        r"^  \d\d:\d\d:\d\d  connect +other\.test:443: other\.test is not in "
        r"the allow-list$",
        status.stdout,
        re.MULTILINE,
    ), status.stdout
    shown_json = json.loads(cli(controller, "status", proxied, "--json").stdout)
    assert shown_json["egress_refusals"] == [
        {
            "at": 1795687201.5,
            "kind": "connect",
            "destination": "other.test:443",
            "reason": "other.test is not in the allow-list",
        }
    ]
    assert cli(controller, "stop", proxied).exit_code == 0
    # A start's own network replaces the environment's allow-list.
    closed = cli(controller, "start", "pipe", "--venv", "weather", "--no-network")
    assert closed.exit_code == 0, closed.output
    backend_id = next(
        b["id"]
        for b in json.loads(cli(controller, "--json", "status").stdout)
        if b["id"] != proxied
    )
    status = cli(controller, "status", backend_id)
    assert re.search(r"^egress +none$", status.stdout, re.MULTILINE), status.stdout
    assert json.loads(cli(controller, "status", backend_id, "--json").stdout)[
        "egress"
    ] == {"mode": "none", "allow": []}
    for result in (created, shown, listed, stored, closed, status):
        assert VALUE not in getattr(result, "output", "")


def controller_name(controller: LiveController) -> str:
    from beephost_controller.settings import Settings

    return Settings().name


def refusal_log(backend_id: str) -> str:
    """The egress proxy's output with one refusal of ``backend_id``."""
    line = {
        "event": "egress",
        "kind": "connect",
        "backend": backend_id,
        "destination": "other.test:443",
        "decision": "refused",
        "reason": "other.test is not in the allow-list",
    }
    return f"2026-11-26T10:00:01.5Z {json.dumps(line)}\n"


def test_a_refused_entry_is_one_error_line_and_a_malformed_option_a_usage_error(
    controller: LiveController,
) -> None:
    error, *_ = failure_lines(
        cli(controller, "venv", "create", "wide", "--allow", "*.co.uk")
    )
    assert error.startswith("error: egress.allow[0] ('*.co.uk'): '*.co.uk' would allow")
    error, *_ = failure_lines(
        cli(controller, "venv", "create", "meta", "--allow", "169.254.169.254/32")
    )
    assert "cloud metadata address" in error
    for args in (
        ["--allow", "api.example.com:https"],
        ["--allow", "[2001:db8::/32"],
        ["--secret", "api.example.com=k"],
        ["--allow", "api.example.com", "--secret", "other.example.com=k"],
        ["--allow", "api.example.com", "--secret", "api.example.com"],
        ["--allow", "api.example.com", "--secret", "api.example.com=k;no-colon"],
    ):
        result = cli(controller, "venv", "create", "bad", *args)
        assert result.exit_code == 2, (args, result.output)
    assert json.loads(cli(controller, "--json", "venv", "list").stdout) == []


def test_secret_set_list_rm_from_stdin_in_a_child_process(
    controller: LiveController,
) -> None:
    env = subprocess_env(controller)
    script = str(BIN / "beep-host")

    def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [script, *args],
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    stored = run("secret", "set", "weather-key", stdin=VALUE)
    assert stored.returncode == 0, stored.stderr
    empty = run("secret", "set", "other-key", stdin="")
    assert empty.returncode == 1
    assert "no value on stdin" in empty.stderr
    short = run("secret", "set", "other-key", stdin="short")
    assert short.returncode == 1
    assert "value" in short.stderr
    listed = run("--json", "secret", "list")
    assert listed.returncode == 0, listed.stderr
    names = [s["name"] for s in json.loads(listed.stdout)]
    assert names == ["weather-key"]
    table = run("secret", "list")
    assert table.stdout.split()[:3] == ["NAME", "SET", "weather-key"]
    removed = run("secret", "rm", "weather-key")
    assert removed.returncode == 0
    again = run("secret", "rm", "weather-key")
    assert again.returncode == 1
    assert "no secret 'weather-key'" in again.stderr
    for result in (stored, empty, short, listed, table, removed, again):
        assert VALUE not in result.stdout + result.stderr
    assert (controller.database.parent / "secrets").is_dir()

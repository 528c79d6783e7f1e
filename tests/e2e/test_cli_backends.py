"""The real ``beep-host`` CLI against a real controller process on the real engine;
starts and pools also against the controller of the compose system (``ON_BOTH``)."""

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.containers import docker
from tests.e2e.controller_process import ON_BOTH, ControllerTarget, beep_host

pytestmark = pytest.mark.docker


def ok_json(controller_target: ControllerTarget, *args: str) -> Any:
    result = beep_host(controller_target, *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def venv(controller_target: ControllerTarget) -> str:
    created = ok_json(
        controller_target, "venv", "create", "cli-env", "six==1.17.0", "--exist-ok"
    )
    assert created["status"] == "ready", created
    return "cli-env"


def test_venv_list_and_status(controller_target: ControllerTarget, venv: str) -> None:
    names = [env["name"] for env in ok_json(controller_target, "venv", "list")]
    assert venv in names
    status = ok_json(controller_target, "venv", "status", venv)
    assert status["requirements"] == ["six==1.17.0"]
    assert status["image"]


@ON_BOTH
@pytest.mark.parametrize("kind", ["pipe", "http", "rpc"])
def test_start_eval_exec_files_logs_stop(
    controller_target: ControllerTarget, venv: str, kind: str, tmp_path: Path
) -> None:
    started = ok_json(controller_target, "start", kind, "--venv", venv, "--ttl", "3600")
    backend = started["id"]
    assert started["status"] == "ready"
    assert started["ttl"] == 3600
    assert started["expires_at"] == started["created_at"] + 3600
    assert started["token"], "start shows the backend's token once"
    try:
        listed = {b["id"]: b for b in ok_json(controller_target, "status")}
        assert listed[backend]["status"] == "ready"
        assert not listed[backend].get("token"), "status never shows a token"
        value = beep_host(
            controller_target, "eval", "-b", backend, "__import__('six').__version__"
        )
        assert value.returncode == 0, value.stderr
        assert value.stdout.strip() == "'1.17.0'"
        run = beep_host(
            controller_target, "exec", "-b", backend, "print(sum(range(10)))"
        )
        assert run.returncode == 0, run.stderr
        assert "45" in run.stdout
        # Files by the backend's id: into the container's workspace and back.
        source = tmp_path / "in.txt"
        source.write_text("through the workspace\n")
        up = beep_host(controller_target, "cp", str(source), f"{backend}:inbox/")
        assert up.returncode == 0, up.stderr
        listed_files = ok_json(controller_target, "ls", f"{backend}:inbox")
        assert [f["path"] for f in listed_files] == ["inbox/in.txt"]
        read = beep_host(
            controller_target,
            "exec",
            "-b",
            backend,
            "print(open('inbox/in.txt').read())",
        )
        assert "through the workspace" in read.stdout
        down = beep_host(
            controller_target,
            "cp",
            f"{backend}:inbox/in.txt",
            str(tmp_path / "back.txt"),
        )
        assert down.returncode == 0, down.stderr
        assert (tmp_path / "back.txt").read_text() == source.read_text()
        # Its URL and token again, and the token from a file or the environment.
        found = ok_json(controller_target, "connection", backend)
        assert found == {"url": listed[backend]["endpoint"], "token": started["token"]}
        token_file = tmp_path / "token"
        token_file.write_text(started["token"] + "\n")
        by_file = beep_host(
            controller_target, "eval", "--url", found["url"], "--token-file", str(token_file),
            "6 * 7",
        )  # fmt: skip
        assert (by_file.returncode, by_file.stdout.strip()) == (0, "42"), by_file.stderr
        by_env = beep_host(
            controller_target, "eval", "--url", found["url"], "6 * 7",
            env={"BEEPHOST_BACKEND_TOKEN": started["token"]},
        )  # fmt: skip
        assert (by_env.returncode, by_env.stdout.strip()) == (0, "42"), by_env.stderr
        wrong = beep_host(
            controller_target, "eval", "--url", found["url"], "1",
            env={"BEEPHOST_BACKEND_TOKEN": "not-" + started["token"]},
        )  # fmt: skip
        assert wrong.returncode != 0
        assert started["token"] not in wrong.stderr + wrong.stdout
        logs = beep_host(controller_target, "logs", backend)
        assert logs.returncode == 0, logs.stderr
        assert "listening" in logs.stdout.lower()
        # Its default session's worker booted beside its settings (issue 33).
        assert "was started early" in logs.stdout, logs.stdout
    finally:
        stopped = beep_host(controller_target, "stop", backend)
    assert stopped.returncode == 0, stopped.stderr
    assert backend not in {b["id"] for b in ok_json(controller_target, "status")}


def test_stop_all(controller_target: ControllerTarget, venv: str) -> None:
    for kind in ("pipe", "http"):
        ok_json(controller_target, "start", kind, "--venv", venv)
    assert len(controller_target.owned("backend")) == 2
    result = beep_host(controller_target, "stop", "--all")
    assert result.returncode == 0, result.stderr
    assert ok_json(controller_target, "status") == []
    # Nothing but the relay made ahead for the next http start (no one's backend).
    assert controller_target.owned("sandbox") == []


@ON_BOTH
@pytest.mark.parametrize("kind", ["pipe", "http"])
def test_venv_pool_keeps_backends_ready_for_start(
    controller_target: ControllerTarget, venv: str, kind: str
) -> None:
    result = beep_host(
        controller_target, "venv", "pool", venv, "--type", kind, "--size", "1"
    )
    assert result.returncode == 0, result.stderr
    assert "keeping 1 ready" in result.stderr
    deadline = time.monotonic() + 90
    while ok_json(controller_target, "venv", "pool", venv)[0]["ready"] != 1:
        assert time.monotonic() < deadline, "the pool was never filled"
        time.sleep(0.3)
    status = beep_host(controller_target, "status")
    assert "ready (pooled)" in status.stdout, status.stdout
    assert f"warm pools: {venv}/{kind} 1/1 ready" in status.stderr
    started = ok_json(controller_target, "start", kind, "--venv", venv)
    try:
        assert started["claimed_at"] is not None
        assert started["token"]
        shown = beep_host(controller_target, "status", started["id"])
        assert "from a warm pool" in shown.stdout, shown.stdout
        stop_all = beep_host(controller_target, "stop", "--all", "--everyone")
        assert stop_all.returncode == 0, stop_all.stderr
        # Only the claimed backend: the pool's refill stays.
        assert started["id"] in stop_all.stderr
        assert any(b["pooled"] for b in ok_json(controller_target, "status"))
    finally:
        beep_host(controller_target, "stop", started["id"])
        reset = beep_host(
            controller_target, "venv", "pool", venv, "--type", kind, "--reset"
        )
        assert reset.returncode == 0, reset.stderr
    assert ok_json(controller_target, "venv", "pool", venv) == []
    deadline = time.monotonic() + 30
    while ok_json(controller_target, "status"):
        assert time.monotonic() < deadline, "the pool's members were not removed"
        time.sleep(0.3)


def test_errors_are_one_line_with_a_hint_and_exit_codes(
    controller_target: ControllerTarget,
) -> None:
    missing = beep_host(controller_target, "start", "pipe", "--venv", "no-such-venv")
    assert missing.returncode == 1
    lines = [line for line in missing.stderr.splitlines() if line.strip()]
    assert any("no-such-venv" in line for line in lines), missing.stderr
    assert "venv create" in missing.stderr, "the hint names the fix"
    unknown = beep_host(controller_target, "logs", "b-000000000000")
    assert unknown.returncode == 1
    usage = beep_host(controller_target, "start", "carrier-pigeon")
    assert usage.returncode == 2


def test_config_shows_settings_without_secrets(
    controller_target: ControllerTarget,
) -> None:
    config = ok_json(controller_target, "config")
    text = json.dumps(config)
    assert controller_target.name in text
    assert "token_set" in text


def test_venv_admin_then_start_defaults_to_it(
    controller_target: ControllerTarget,
) -> None:
    admin = ok_json(controller_target, "venv", "admin")
    assert (admin["name"], admin["admin"], admin["status"]) == ("admin", True, "ready")
    started = ok_json(controller_target, "start", "pipe")  # --venv defaults to admin
    try:
        assert started["environment"] == "admin"
        names = beep_host(
            controller_target,
            "eval",
            "-b",
            started["id"],
            "sorted(e.name for e in "
            "__import__('beephost_client').ControllerClient().environments())",
        )
        assert names.returncode == 0, names.stderr
        assert "'admin'" in names.stdout
    finally:
        assert beep_host(controller_target, "stop", started["id"]).returncode == 0


def test_install_follows_the_job_and_lists_what_is_installed(
    controller_target: ControllerTarget, venv: str
) -> None:
    backend = ok_json(controller_target, "start", "pipe", "--venv", venv)["id"]
    try:
        installed = beep_host(
            controller_target, "install", "-b", backend, "tabulate==0.9.0"
        )
        assert installed.returncode == 0, installed.stderr
        assert f"installing tabulate==0.9.0 into {backend}" in installed.stderr
        assert "resolving tabulate==0.9.0" in installed.stderr  # the job's log, live
        assert installed.stdout.split() == ["NAME", "VERSION", "tabulate", "0.9.0"]
        listed = ok_json(controller_target, "install", "-b", backend, "--list")
        assert listed == [{"name": "tabulate", "version": "0.9.0"}]
        run = beep_host(
            controller_target,
            "eval",
            "-b",
            backend,
            "__import__('tabulate').__version__",
        )
        assert run.stdout.strip() == "'0.9.0'"
        conflict = beep_host(controller_target, "install", "-b", backend, "six==1.16.0")
        assert conflict.returncode == 1
        assert "resolution failed" in conflict.stderr
        assert "hint: the backend is unchanged" in conflict.stderr
        usage = beep_host(controller_target, "install", "-b", backend)
        assert usage.returncode == 2
    finally:
        beep_host(controller_target, "stop", backend)


def test_deleting_the_last_environment_of_an_image_removes_it(
    controller_target: ControllerTarget, venv: str, docker_cli: str
) -> None:
    made = ok_json(controller_target, "venv", "create", "short-lived", "six==1.16.0")
    assert made["status"] == "ready", made
    image = made["image"]
    docker(docker_cli, "image", "inspect", image)  # it exists
    status = beep_host(controller_target, "status")
    assert "environment images:" in status.stderr, status.stderr
    deleted = beep_host(controller_target, "venv", "delete", "short-lived")
    assert deleted.returncode == 0, deleted.stderr
    gone = docker(docker_cli, "image", "inspect", image, check=False)
    assert gone.strip() in ("", "[]"), "the image was removed with its environment"
    # The module's own environment is in use: prune never takes it.
    kept = ok_json(controller_target, "venv", "status", venv)["image"]
    pruned = ok_json(controller_target, "prune")
    assert kept not in [tag for i in pruned["removed"] for tag in i["tags"]]
    docker(docker_cli, "image", "inspect", kept)

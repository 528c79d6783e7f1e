"""Every tool the controller runs gets an environment without its secrets (issue 11).

Real subprocesses: the real uv for resolve(), and stand-in executables that write out
the environment they were given for UvTools and mmdebstrap.
"""

import os
from pathlib import Path

import pytest

from beephost_controller.engine.tool_env import private_home, tool_environment
from beephost_controller.images.errors import BaseImageError
from beephost_controller.images.rootfs import MmdebstrapBuilder, rootfs_plan
from beephost_controller.images.uv_tools import UvTools
from beephost_controller.resolver import ResolutionError, resolve

TOKEN = "tool-env-secret-0123456789abcdef"


@pytest.fixture(autouse=True)
def secrets_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BEEPHOST_CONTROLLER_TOKEN", TOKEN)
    monkeypatch.setenv("BEEPHOST_CONTROLLER_SOMETHING", "also-not-for-tools")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", TOKEN)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.test:3128")


def assert_clean(env: dict[str, str]) -> None:
    assert not [k for k in env if k.startswith("BEEPHOST_")], env
    assert TOKEN not in "\n".join(f"{k}={v}" for k, v in env.items())
    assert env["HOME"] == str(private_home())
    assert env["HOME"] != os.environ.get("HOME")


def recording(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """An executable that writes its environment to a file and fails."""
    record = tmp_path / f"{name}.env"
    tool = tmp_path / name
    tool.write_text(f'#!/bin/sh\nenv > "{record}"\nexit 3\n')
    tool.chmod(0o755)
    return tool, record


def read_env(record: Path) -> dict[str, str]:
    lines = record.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def test_tool_environment_keeps_what_tools_need_and_nothing_secret() -> None:
    env = tool_environment({"SOURCE_DATE_EPOCH": "1"})
    assert_clean(env)
    assert env["PATH"] == os.environ["PATH"]
    assert env["HTTPS_PROXY"] == "http://proxy.test:3128"
    assert env["SOURCE_DATE_EPOCH"] == "1"
    # uv's cache and Pythons stay where the real HOME puts them.
    assert env["UV_CACHE_DIR"].startswith(
        os.environ.get("UV_CACHE_DIR", str(Path.home()))
    )
    assert "AWS_SECRET_ACCESS_KEY" not in env
    assert (private_home().stat().st_mode & 0o777) == 0o700


def test_resolve_never_expands_a_variable_into_a_url() -> None:
    """Past the API's check (a row stored before it, say): uv gets no token to expand,
    so its error names the variable, never the value."""
    with pytest.raises(ResolutionError) as failed:
        resolve(
            ["x @ http://127.0.0.1:1/${BEEPHOST_CONTROLLER_TOKEN}/x.tar.gz"],
            "3.11",
            timeout=60,
        )
    assert TOKEN not in str(failed.value)


def test_uv_tools_run_with_the_tool_environment(tmp_path: Path) -> None:
    uv, record = recording(tmp_path, "uv")
    tools = UvTools(str(uv), ca_bundle=tmp_path / "ca.pem", index_url="https://i.test/")
    with pytest.raises(Exception, match="failed"):
        tools.download(["six==1.17.0 --hash=sha256:" + "0" * 64], "3.11", tmp_path)
    env = read_env(record)
    assert_clean(env)
    assert env["SSL_CERT_FILE"] == str(tmp_path / "ca.pem")
    assert env["UV_DEFAULT_INDEX"] == "https://i.test/"
    with pytest.raises(Exception, match="failed"):
        tools.export(tmp_path, "beephost-pipe-backend")
    assert_clean(read_env(record))


def test_mmdebstrap_runs_with_the_tool_environment(tmp_path: Path) -> None:
    mmdebstrap, record = recording(tmp_path, "mmdebstrap")
    builder = MmdebstrapBuilder(executable=str(mmdebstrap), timeout=30)
    plan = rootfs_plan("3.11", "http://deb.debian.org/debian")
    with pytest.raises(BaseImageError):
        builder.build(plan, tmp_path / "rootfs.tar.gz")
    env = read_env(record)
    assert_clean(env)
    assert env["SOURCE_DATE_EPOCH"].isdigit()

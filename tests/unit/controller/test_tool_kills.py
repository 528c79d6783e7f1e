"""A tool the kernel killed says so: real stand-in executables that kill themselves,
as the OOM killer kills uv when the controller's container reaches its memory limit."""

import os
from pathlib import Path

import pytest

from beephost_controller.engine.tool_exit import memory_limit, memory_words
from beephost_controller.images.errors import BackendImageError
from beephost_controller.images.uv_tools import UvTools
from beephost_controller.resolver import ResolutionError, resolve


def self_killing(tmp_path: Path, signal_name: str) -> Path:
    tool = tmp_path / "uv"
    tool.write_text(f"#!/bin/sh\nkill -{signal_name} $$\n")
    tool.chmod(0o755)
    return tool


def test_a_resolver_killed_by_sigkill_is_said_to_be_out_of_memory(
    tmp_path: Path,
) -> None:
    tool = self_killing(tmp_path, "KILL")
    with pytest.raises(ResolutionError) as caught:
        resolve(["six"], "3.11", uv=str(tool))
    message = str(caught.value)
    assert message.startswith(
        "the resolver was killed by SIGKILL, most likely out of memory: the controller"
    )
    assert "memory limit" in message
    assert message.endswith(
        "; resolve fewer requirements or raise the controller's memory"
    )
    assert "-9" not in message


def test_another_signal_is_named_without_a_guess(tmp_path: Path) -> None:
    tool = self_killing(tmp_path, "TERM")
    with pytest.raises(ResolutionError, match=r"^the resolver was killed by SIGTERM$"):
        resolve(["six"], "3.11", uv=str(tool))


def test_uv_killed_while_unpacking_says_so(tmp_path: Path) -> None:
    tool = self_killing(tmp_path, "KILL")
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    with pytest.raises(BackendImageError) as caught:
        UvTools(uv=str(tool)).unpack(["six==1.17.0"], "3.11", wheels, tmp_path / "t")
    message = str(caught.value)
    assert "uv was killed by SIGKILL, most likely out of memory" in message
    assert "failed (-9)" not in message


@pytest.mark.parametrize(
    ("files", "limit"),
    [
        ({"memory.max": "1073741824\n"}, 1 << 30),
        ({"memory.max": "max\n"}, None),
        ({"memory/memory.limit_in_bytes": "536870912\n"}, 1 << 29),
        ({"memory/memory.limit_in_bytes": "9223372036854771712\n"}, None),
        ({}, None),
    ],
)
def test_the_memory_limit_comes_from_the_cgroup(
    tmp_path: Path, files: dict[str, str], limit: int | None
) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert memory_limit(tmp_path) == limit


def test_the_limit_in_words() -> None:
    assert memory_words(1 << 30, 16 << 30) == "the controller's memory limit is 1.0 GiB"
    assert memory_words(None, 16 << 30) == (
        "the controller has no memory limit of its own (the host has 16.0 GiB)"
    )
    assert memory_words(None, None) == "the controller has no memory limit of its own"


@pytest.mark.skipif(not Path("/sys/fs/cgroup").is_dir(), reason="no cgroup here")
def test_this_machines_limit_reads_without_error() -> None:
    limit = memory_limit()
    assert limit is None or limit > 0
    assert os.sysconf("SC_PHYS_PAGES") > 0

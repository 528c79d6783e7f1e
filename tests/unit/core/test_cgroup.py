"""beephost_core.cgroup over fake filesystem trees: cgroup v1 and v2, as Docker lays them out."""

from pathlib import Path

import pytest

from beephost_core.cgroup import (
    CgroupFiles,
    ContainerLimits,
    Counter,
    find,
    memberships,
    parse_counter,
    parse_limit,
    read_counter,
    read_limit,
)

V1_SELF = """\
12:pids:/docker/abc
11:memory:/docker/abc
3:cpu,cpuacct:/docker/abc
1:name=systemd:/docker/abc
0::/docker/abc
"""
OOM_CONTROL = "oom_kill_disable 0\nunder_oom 0\noom_kill {n}\n"


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def v1_container(root: Path, oom_kills: int = 0, memory: int = 256 << 20) -> Path:
    """What a container sees under cgroup v1: its own cgroup at each controller's root."""
    return write(
        root,
        {
            "proc/self/cgroup": V1_SELF,
            "sys/fs/cgroup/memory/memory.oom_control": OOM_CONTROL.format(n=oom_kills),
            "sys/fs/cgroup/memory/memory.limit_in_bytes": f"{memory}\n",
            "sys/fs/cgroup/pids/pids.events": "max 0\n",
            "sys/fs/cgroup/pids/pids.max": "64\n",
        },
    )


def v2_container(root: Path, cgroup: str = "/", base: str = "") -> Path:
    prefix = f"sys/fs/cgroup/{base}".rstrip("/")
    return write(
        root,
        {
            "proc/self/cgroup": f"0::{cgroup}\n",
            "sys/fs/cgroup/cgroup.controllers": "cpu memory pids\n",
            f"{prefix}/memory.events": "low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\n",
            f"{prefix}/memory.max": f"{128 << 20}\n",
            f"{prefix}/pids.events": "max 7\n",
            f"{prefix}/pids.max": "max\n",
        },
    )


def test_memberships_of_v1_and_v2_lines() -> None:
    found = memberships(V1_SELF)
    assert found["memory"] == "/docker/abc"
    assert found["cpu"] == found["cpuacct"] == "/docker/abc"
    assert found["name=systemd"] == "/docker/abc"
    assert found[""] == "/docker/abc"
    assert memberships("garbage\n\n") == {}


def test_v1_container_reads_its_own_cgroup_at_the_root(tmp_path: Path) -> None:
    # /proc/self/cgroup names /docker/abc, which the container does not see: the
    # mount's root is its cgroup.
    limits = ContainerLimits(v1_container(tmp_path, oom_kills=2))
    assert limits.files.oom_events == (
        tmp_path / "sys/fs/cgroup/memory/memory.oom_control"
    )
    assert limits.oom_kills() == 2
    assert limits.memory_limit() == 256 << 20
    assert limits.pids_refused() == 0
    assert limits.pids_limit() == 64


def test_v1_host_reads_the_named_cgroup_first(tmp_path: Path) -> None:
    v1_container(tmp_path)
    write(
        tmp_path,
        {"sys/fs/cgroup/memory/docker/abc/memory.oom_control": OOM_CONTROL.format(n=9)},
    )
    assert read_counter(find(tmp_path).oom_events, "oom_kill") == 9


def test_v2_private_namespace(tmp_path: Path) -> None:
    limits = ContainerLimits(v2_container(tmp_path))
    assert limits.oom_kills() == 1
    assert limits.memory_limit() == 128 << 20
    assert limits.pids_refused() == 7
    assert limits.pids_limit() is None  # "max"


def test_v2_nested_cgroup(tmp_path: Path) -> None:
    files = find(v2_container(tmp_path, cgroup="/docker/abc", base="docker/abc"))
    assert files.oom_events == tmp_path / "sys/fs/cgroup/docker/abc/memory.events"


def test_counters_follow_the_file(tmp_path: Path) -> None:
    root = v1_container(tmp_path)
    limits = ContainerLimits(root)
    assert limits.oom_kills() == 0
    write(root, {"sys/fs/cgroup/memory/memory.oom_control": OOM_CONTROL.format(n=3)})
    assert limits.oom_kills() == 3  # one pread of the open file, every look


def test_a_recent_look_serves_for_a_while_and_a_fresh_one_renews_it(
    tmp_path: Path,
) -> None:
    root = v1_container(tmp_path)
    limits = ContainerLimits(root)
    assert limits.recent_oom_kills() == 0  # never looked: a look now
    write(root, {"sys/fs/cgroup/memory/memory.oom_control": OOM_CONTROL.format(n=2)})
    assert limits.recent_oom_kills() == 0  # within the second: no system call
    assert limits.recent_oom_kills(max_age=0.0) == 2  # older than allowed: a look
    write(root, {"sys/fs/cgroup/memory/memory.oom_control": OOM_CONTROL.format(n=5)})
    assert limits.oom_kills() == 5  # a fresh look, every time
    write(root, {"sys/fs/cgroup/memory/memory.oom_control": OOM_CONTROL.format(n=6)})
    assert limits.recent_oom_kills() == 5  # the fresh look serves the next ones


def test_nothing_there_reads_as_unknown(tmp_path: Path) -> None:
    limits = ContainerLimits(tmp_path)
    assert limits.files == CgroupFiles()
    assert limits.oom_kills() is None
    assert limits.pids_refused() is None
    assert limits.memory_limit() is None
    assert limits.pids_limit() is None
    assert Counter(tmp_path / "missing", "oom_kill").read() is None
    assert read_limit(tmp_path / "missing") is None
    assert read_counter(None, "oom_kill") is None


def test_an_old_kernel_without_the_oom_kill_line(tmp_path: Path) -> None:
    root = v1_container(tmp_path)
    write(root, {"sys/fs/cgroup/memory/memory.oom_control": "oom_kill_disable 0\n"})
    assert ContainerLimits(root).oom_kills() is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [("268435456\n", 256 << 20), ("max\n", None), ("9223372036854771712\n", None)],
)
def test_parse_limit(text: str, expected: int | None) -> None:
    assert parse_limit(text) == expected


def test_parse_counter() -> None:
    assert parse_counter("max 3\n", "max") == 3
    assert parse_counter("oom 1\noom_kill 2\n", "oom_kill") == 2
    assert parse_counter("oom_kill x\n", "oom_kill") is None
    assert parse_counter("", "max") is None

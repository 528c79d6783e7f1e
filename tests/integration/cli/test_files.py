"""``beep-host cp`` and ``ls`` against real pipe and HTTP backend processes."""

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from beephost_cli.main import app
from beephost_client import connect
from tests.integration.contract.servers import TOKEN, ServerProcess

KINDS = ("pipe", "http")
MIB = 1 << 20


def cli(backend: ServerProcess, *args: str, input: bytes | None = None) -> Result:
    command, *rest = args
    target = ["--url", backend.url, "--token", TOKEN]
    return CliRunner().invoke(app, [command, *target, *rest], input=input)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def remote_run(backend: ServerProcess, code: str) -> object:
    with connect(backend.url, token=TOKEN) as client:
        client.execute("import os")
        return client.evaluate(code)


@pytest.fixture(params=KINDS)
def backend(
    request: pytest.FixtureRequest, backends: dict[str, ServerProcess]
) -> Iterator[ServerProcess]:
    """A backend whose workspace is emptied after the test (the processes are shared)."""
    chosen = backends[request.param]
    yield chosen
    with connect(chosen.url, token=TOKEN) as client:
        for entry in client.files.list():
            client.files.remove(entry.path, recursive=True)


def test_a_file_goes_up_and_comes_back(backend: ServerProcess, tmp_path: Path) -> None:
    local = tmp_path / "big.bin"
    local.write_bytes(os.urandom(3 * MIB + 17))
    up = cli(backend, "cp", str(local), ":inbox/big.bin")
    assert up.exit_code == 0, up.output
    assert "copied 1 file(s), 3.0 MiB, to inbox/big.bin" in up.stderr
    assert (
        remote_run(backend, "os.path.getsize('inbox/big.bin')") == local.stat().st_size
    )

    down = cli(backend, "cp", ":inbox/big.bin", str(tmp_path / "back.bin"))
    assert down.exit_code == 0, down.output
    assert digest(tmp_path / "back.bin") == digest(local)
    # Nothing else beside it: the temporary name was renamed.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["back.bin", "big.bin"]


def test_into_a_directory_a_file_keeps_its_name(
    backend: ServerProcess, tmp_path: Path
) -> None:
    local = tmp_path / "data.csv"
    local.write_text("a,b\n1,2\n")
    assert cli(backend, "cp", str(local), ":uploads/").exit_code == 0
    assert cli(backend, "cp", str(local), ":uploads").exit_code == 0  # now a directory
    listing = cli(backend, "ls", ":uploads", "--json")
    assert [e["name"] for e in json.loads(listing.stdout)] == ["data.csv"]
    into = tmp_path / "here"
    into.mkdir()
    down = cli(backend, "cp", ":uploads/data.csv", str(into))
    assert down.exit_code == 0, down.output
    assert (into / "data.csv").read_text() == "a,b\n1,2\n"


def test_directories_copy_with_r_and_skip_symlinks(
    backend: ServerProcess, tmp_path: Path
) -> None:
    tree = tmp_path / "project"
    (tree / "src" / "pkg").mkdir(parents=True)
    (tree / "empty").mkdir()
    (tree / "README").write_text("hello\n")
    (tree / "src" / "pkg" / "mod.py").write_text("x = 1\n")
    (tree / "link").symlink_to("/etc/passwd")

    refused = cli(backend, "cp", str(tree), ":project")
    assert refused.exit_code == 1
    assert "error: " in refused.stderr
    assert "hint: pass -r" in refused.stderr

    up = cli(backend, "cp", "-r", str(tree), ":project")
    assert up.exit_code == 0, up.output
    assert "copied 2 file(s)" in up.stderr
    assert "1 skipped" in up.stderr
    assert f"skipped {tree / 'link'}: not a regular file or directory" in up.stderr
    found = remote_run(
        backend,
        "sorted(os.path.join(d, f) for d, ds, fs in os.walk('project') for f in fs + ds)",
    )
    assert found == [
        "project/README",
        "project/empty",
        "project/src",
        "project/src/pkg",
        "project/src/pkg/mod.py",
    ]

    remote_run(backend, "os.symlink('/etc', 'project/out-link') or 1")
    down = cli(backend, "cp", "-r", ":project", str(tmp_path / "copy"))
    assert down.exit_code == 0, down.output
    assert (tmp_path / "copy" / "src" / "pkg" / "mod.py").read_text() == "x = 1\n"
    assert (tmp_path / "copy" / "README").read_text() == "hello\n"
    assert not (tmp_path / "copy" / "out-link").exists()  # a symlink: never followed
    assert "skipped project/out-link: a symlink" in down.stderr


def test_ls_lists_and_describes(backend: ServerProcess, tmp_path: Path) -> None:
    remote_run(backend, "os.makedirs('d/e') or open('d/f.txt', 'w').write('12345')")
    table = cli(backend, "ls", ":d")
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["TYPE", "SIZE", "MODIFIED", "NAME"]
    assert lines[1].split()[0] == "directory"
    assert lines[1].split()[-1] == "e/"
    assert lines[2].split()[:3] == ["file", "5", "B"]
    assert lines[2].endswith("f.txt")

    one = json.loads(cli(backend, "ls", "d/f.txt", "--json").stdout)
    assert [(e["path"], e["type"], e["size"]) for e in one] == [("d/f.txt", "file", 5)]

    missing = cli(backend, "ls", ":nothing")
    assert missing.exit_code == 1
    assert missing.stderr.startswith("error: ")
    assert "nothing" in missing.stderr


def test_standard_input_and_output(backend: ServerProcess) -> None:
    data = bytes(range(256)) * 1000
    up = cli(backend, "cp", "-", ":piped.bin", input=data)
    assert up.exit_code == 0, up.output
    down = cli(backend, "cp", ":piped.bin", "-")
    assert down.exit_code == 0, down.output
    assert down.stdout_bytes == data


def test_paths_out_of_the_workspace_are_refused(
    backend: ServerProcess, tmp_path: Path
) -> None:
    local = tmp_path / "x.txt"
    local.write_text("x")
    for target in (":../x.txt", ":/etc/x.txt"):
        result = cli(backend, "cp", str(local), target)
        assert result.exit_code == 1, target
        assert result.stderr.startswith("error: ")
    leaked = cli(backend, "cp", ":../../etc/passwd", str(tmp_path / "p"))
    assert leaked.exit_code == 1
    assert not (tmp_path / "p").exists()


def test_usage_errors(backends: dict[str, ServerProcess], tmp_path: Path) -> None:
    pipe = backends["pipe"]
    both_local = cli(pipe, "cp", str(tmp_path / "a"), str(tmp_path / "b"))
    assert both_local.exit_code == 2
    assert "one of SOURCE and DESTINATION" in both_local.stderr
    both_remote = cli(pipe, "cp", ":a", ":b")
    assert both_remote.exit_code == 2
    no_url = CliRunner().invoke(app, ["cp", str(tmp_path), ":x"])
    assert no_url.exit_code == 2
    assert ":PATH names the backend of --url" in no_url.stderr
    absent = cli(pipe, "cp", str(tmp_path / "absent"), ":x")
    assert absent.exit_code == 1
    assert "no such file or directory" in absent.stderr

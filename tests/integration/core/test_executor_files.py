"""The file commands through Executor.run: the workspace as user code sees it, uploads
owned by their connection, idle uploads expired, the quota for user code."""

import asyncio
import base64
import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from beephost_core import Executor
from beephost_core.paths import UPLOAD_PREFIX
from beephost_protocol import COMMANDS, Execute
from beephost_protocol.errors import Conflict, ExecutionFailed, NotFound
from tests.integration.core.conftest import MakeExecutor


def command(kind: str, **params: Any) -> Any:
    return COMMANDS[kind].model_validate(params)


def temporary_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(UPLOAD_PREFIX)]


async def test_user_code_runs_in_the_workspace_with_it_as_home(
    executor: Executor,
) -> None:
    result = await executor.run(
        Execute(
            code="import os\nopen('made.txt', 'w').write('by code')\n"
            "(os.getcwd(), os.environ['HOME'])"
        )
    )
    root = str(executor.workspace.root)
    assert result["value"] == {"$tuple": [root, root]}
    listing = await executor.run(command("file.list"))
    assert [e["name"] for e in listing["entries"]] == ["made.txt"]


async def test_a_temporary_workspace_is_removed_when_the_executor_closes(
    make_executor: MakeExecutor,
) -> None:
    executor = await make_executor()
    root = executor.workspace.root
    assert root.is_dir()
    await executor.aclose()
    assert not root.exists()


async def test_a_configured_workspace_is_kept(
    make_executor: MakeExecutor, tmp_path: Path
) -> None:
    executor = await make_executor(workspace=str(tmp_path / "ws"))
    await executor.run(Execute(code="open('kept', 'w').write('k')"))
    await executor.aclose()
    assert (tmp_path / "ws" / "kept").read_text() == "k"


async def test_an_upload_of_commands_round_trips(executor: Executor) -> None:
    data = os.urandom(2_500_000)
    opened = await executor.run(
        command("file.upload.open", path="in/blob", size=len(data))
    )
    chunk = opened["chunk_bytes"]
    for offset in range(0, len(data), chunk):
        progress = await executor.run(
            command(
                "file.upload.write",
                upload=opened["upload"],
                offset=offset,
                data=data[offset : offset + chunk],
            )
        )
        assert progress["received"] == min(offset + chunk, len(data))
    info = await executor.run(
        command(
            "file.upload.commit",
            upload=opened["upload"],
            sha256=hashlib.sha256(data).hexdigest(),
        )
    )
    assert info["size"] == len(data)
    read = b""
    while True:
        got = await executor.run(command("file.read", path="in/blob", offset=len(read)))
        read += base64.b64decode(got["data"])
        if got["eof"]:
            break
    assert read == data
    code = "import hashlib; hashlib.sha256(open('in/blob', 'rb').read()).hexdigest()"
    digest = await executor.run(Execute(code=code))
    assert digest["value"] == hashlib.sha256(data).hexdigest()  # user code sees it


async def test_chunks_out_of_order_are_refused(executor: Executor) -> None:
    opened = await executor.run(command("file.upload.open", path="f"))
    with pytest.raises(Exception, match="send chunks in order") as refused:
        await executor.run(
            command("file.upload.write", upload=opened["upload"], offset=5, data=b"x")
        )
    assert getattr(refused.value, "code", None) == "invalid_request"
    await executor.run(command("file.upload.abort", upload=opened["upload"]))
    assert temporary_files(executor.workspace.root) == []


async def test_a_gone_owner_aborts_its_uploads(executor: Executor) -> None:
    mine = await executor.run(command("file.upload.open", path="a"), owner="conn-1")
    theirs = await executor.run(command("file.upload.open", path="b"), owner="conn-2")
    for opened in (mine, theirs):
        await executor.run(
            command("file.upload.write", upload=opened["upload"], offset=0, data=b"12")
        )
    executor.release_owned("conn-1")
    for _ in range(100):
        if len(temporary_files(executor.workspace.root)) == 1:
            break
        await asyncio.sleep(0.01)
    with pytest.raises(NotFound):
        await executor.run(
            command("file.upload.write", upload=mine["upload"], offset=2, data=b"3")
        )
    info = await executor.run(command("file.upload.commit", upload=theirs["upload"]))
    assert info["path"] == "b"
    assert temporary_files(executor.workspace.root) == []


async def test_an_idle_upload_expires(executor: Executor) -> None:
    executor.files.idle_timeout = 0.0
    opened = await executor.run(command("file.upload.open", path="slow"))
    await executor.files.expire_idle()
    aborted = await executor.run(command("file.upload.abort", upload=opened["upload"]))
    assert aborted == {"aborted": False}  # already gone
    assert temporary_files(executor.workspace.root) == []


async def test_user_code_cannot_write_a_file_over_the_quota(
    make_executor: MakeExecutor,
) -> None:
    executor = await make_executor(workspace_quota=100_000)
    with pytest.raises(ExecutionFailed, match="File too large"):
        await executor.run(Execute(code="open('big', 'wb').write(b'x' * 200_000)"))
    assert (await executor.run(Execute(code="1 + 1")))["value"] == 2  # worker alive


async def test_usage_reports_the_root_and_quota(make_executor: MakeExecutor) -> None:
    executor = await make_executor(workspace_quota=1 << 20)
    await executor.run(Execute(code="open('f', 'wb').write(b'x' * 1234)"))
    usage = await executor.run(command("file.usage"))
    assert usage == {
        "root": str(executor.workspace.root),
        "used": 1234,
        "quota": 1 << 20,
    }


async def test_a_held_read_keeps_one_version_until_its_end(executor: Executor) -> None:
    """``file.read`` with ``hold``: the file stays open between the reads (what the
    pipe's downloads ask), so a file renamed over the name is not mixed in."""
    target = executor.workspace.root / "v.bin"
    target.write_bytes(b"a" * 10)
    first = await executor.run(
        command("file.read", path="v.bin", length=4, hold=True), owner="conn-1"
    )
    assert (first["data"], first["eof"]) == (base64.b64encode(b"aaaa").decode(), False)
    replacement = target.with_name("new")
    replacement.write_bytes(b"b" * 10)
    replacement.replace(target)
    held = first["reader"]
    rest = await executor.run(
        command("file.read", path="v.bin", offset=4, length=100, reader=held),
        owner="conn-1",
    )
    assert (rest["data"], rest["eof"], "reader" in rest) == (
        base64.b64encode(b"a" * 6).decode(),
        True,
        False,
    )
    with pytest.raises(NotFound, match="read from the start again"):  # closed at eof
        await executor.run(
            command("file.read", path="v.bin", offset=10, reader=held), owner="conn-1"
        )
    fresh = await executor.run(command("file.read", path="v.bin"))
    assert fresh["data"] == base64.b64encode(b"b" * 10).decode()
    assert "reader" not in fresh, "a read without hold holds nothing"


async def test_a_held_read_fails_once_its_file_is_written_in_place(
    executor: Executor,
) -> None:
    target = executor.workspace.root / "w.bin"
    target.write_bytes(b"a" * 10)
    first = await executor.run(command("file.read", path="w.bin", length=4, hold=True))
    with target.open("ab") as out:
        out.write(b"more")
    with pytest.raises(Conflict, match="changed while it was read"):
        await executor.run(
            command("file.read", path="w.bin", offset=4, reader=first["reader"])
        )
    assert executor.files._reads == {}, "the failed read is closed"


async def test_a_gone_owner_closes_its_held_reads(executor: Executor) -> None:
    (executor.workspace.root / "h.bin").write_bytes(b"x" * 10)
    for owner in ("conn-1", "conn-2"):
        await executor.run(
            command("file.read", path="h.bin", length=1, hold=True), owner=owner
        )
    executor.release_owned("conn-1")
    for _ in range(100):
        if len(executor.files._reads) == 1:
            break
        await asyncio.sleep(0.01)
    assert [held.owner for held in executor.files._reads.values()] == ["conn-2"]
    executor.files.idle_timeout = 0.0
    await executor.files.expire_idle()
    assert executor.files._reads == {}, "an idle held read is closed"

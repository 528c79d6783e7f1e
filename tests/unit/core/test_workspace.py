"""The workspace on a real directory: confinement, each operation, uploads, the quota."""

import errno
import hashlib
import os
from pathlib import Path

import pytest

from beephost_core.fs_errors import typed
from beephost_core.paths import UPLOAD_PREFIX
from beephost_core.transfers import FileChanged, FileReader, first_read
from beephost_core.workspace import Workspace
from beephost_protocol.errors import (
    Conflict,
    ErrorCode,
    InvalidRequest,
    NotFound,
    QuotaExceeded,
    Unavailable,
)


@pytest.fixture
def space(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path / "ws", quota=10_000)


def upload(space: Workspace, path: str, data: bytes, **options: object) -> None:
    with space.begin_upload(path, **options) as writing:  # type: ignore[arg-type]
        writing.write(data)
        writing.commit()


def leftovers(space: Workspace) -> list[str]:
    return [
        str(path.relative_to(space.root))
        for path in space.root.rglob("*")
        if path.name.startswith(UPLOAD_PREFIX)
    ]


@pytest.mark.parametrize(
    "path",
    ["../x", "a/../../x", "..", "/etc/passwd", "/", "", "a\x00b"],
)
def test_paths_outside_the_workspace_are_refused(space: Workspace, path: str) -> None:
    with pytest.raises(InvalidRequest):
        space.stat(path)


def test_absolute_paths_under_the_root_are_the_same_as_relative_ones(
    space: Workspace,
) -> None:
    upload(space, "in/data.csv", b"a,b\n")
    assert space.stat(f"{space.root}/in/data.csv").path == "in/data.csv"
    assert space.stat(str(space.root)).path == "."


def test_a_symlink_on_the_way_is_never_followed(
    space: Workspace, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("s")
    (space.root / "link").symlink_to(outside)
    (space.root / "file-link").symlink_to(outside / "secret")
    for path in ("link/secret", "file-link"):
        with pytest.raises(InvalidRequest, match="symlink"):
            space.open_reader(path)
    with pytest.raises(InvalidRequest, match="symlink"):
        space.begin_upload("link/new")
    with pytest.raises(InvalidRequest, match="symlink"):
        space.list("link")
    assert space.stat("link").type == "symlink"
    assert not (outside / "new").exists()


def test_a_fifo_is_listed_but_never_opened(space: Workspace) -> None:
    os.mkfifo(space.root / "fifo")
    assert space.stat("fifo").type == "other"
    with pytest.raises(InvalidRequest, match="not a regular file"):
        space.open_reader("fifo")  # returns at once: it must not wait for a writer


def test_upload_then_read_by_ranges(space: Workspace) -> None:
    data = os.urandom(5000)
    with space.begin_upload("deep/er/f.bin", size=len(data)) as writing:
        assert writing.write(data[:3000]) == 3000
        assert writing.write(data[3000:]) == 5000
        info = writing.commit(hashlib.sha256(data).hexdigest())
    assert (info.path, info.name, info.type, info.size) == (
        "deep/er/f.bin",
        "f.bin",
        "file",
        5000,
    )
    with space.open_reader("deep/er/f.bin") as reader:
        assert reader.size == 5000
        assert reader.read(4000, 2000) == data[4000:]
        assert reader.read(5000, 10) == b""


def test_write_all_appends_every_piece_in_order_past_iov_max(
    tmp_path: Path,
) -> None:
    space = Workspace(tmp_path / "ws", quota=0)
    pieces = [os.urandom(n % 7) for n in range(3000)]  # empty ones too; > IOV_MAX
    data = b"".join(pieces)
    with space.begin_upload("many.bin") as writing:
        assert writing.write_all(pieces) == len(data)
        assert writing.write_all([b"", b"end"]) == len(data) + 3
        info = writing.commit(hashlib.sha256(data + b"end").hexdigest())
    assert info.size == len(data) + 3
    assert (space.root / "many.bin").read_bytes() == data + b"end"


def test_an_upload_is_invisible_until_committed_and_gone_when_aborted(
    space: Workspace,
) -> None:
    with space.begin_upload("f") as writing:
        writing.write(b"half")
        assert [e.name for e in space.list().entries] == []
        assert len(leftovers(space)) == 1
    with pytest.raises(NotFound):
        space.stat("f")
    assert leftovers(space) == []


def test_a_wrong_checksum_writes_nothing(space: Workspace) -> None:
    upload(space, "f", b"old")
    writing = space.begin_upload("f")
    writing.write(b"new")
    with pytest.raises(InvalidRequest, match="SHA-256"):
        writing.commit("0" * 64)
    assert (space.root / "f").read_bytes() == b"old"
    assert leftovers(space) == []


def test_no_overwrite_refuses_an_existing_name(space: Workspace) -> None:
    upload(space, "f", b"one")
    with pytest.raises(Conflict):
        space.begin_upload("f", overwrite=False)
    racing = space.begin_upload("g", overwrite=False)
    racing.write(b"mine")
    (space.root / "g").write_bytes(b"theirs")  # taken while the upload ran
    with pytest.raises(Conflict):
        racing.commit()
    assert (space.root / "g").read_bytes() == b"theirs"
    assert leftovers(space) == []


def test_the_quota_refuses_an_upload_and_leaves_nothing(space: Workspace) -> None:
    upload(space, "kept", b"x" * 6000)
    with pytest.raises(QuotaExceeded) as announced:
        space.begin_upload("big", size=5000)
    assert announced.value.data == {"limit": 10_000, "used": 6000}
    writing = space.begin_upload("big")
    writing.write(b"y" * 3000)
    with pytest.raises(QuotaExceeded):
        writing.write(b"y" * 2000)
    with pytest.raises(NotFound):
        space.stat("big")
    assert leftovers(space) == []
    assert space.usage().used == 6000


def test_two_open_uploads_share_the_quota(space: Workspace) -> None:
    first = space.begin_upload("a")
    second = space.begin_upload("b")
    first.write(b"1" * 6000)
    with pytest.raises(QuotaExceeded):
        second.write(b"2" * 6000)
    first.commit()
    assert space.usage().used == 6000


def test_no_quota_means_no_limit(tmp_path: Path) -> None:
    space = Workspace(tmp_path, quota=0)
    upload(space, "f", b"z" * 100_000)
    assert space.usage().quota == 0


def test_list_sorts_entries_and_hides_uploads_in_progress(space: Workspace) -> None:
    upload(space, "b.txt", b"b")
    space.mkdir("a")
    (space.root / "c").symlink_to("/etc")
    writing = space.begin_upload("z")
    listing = space.list(".")
    assert [(e.name, e.type) for e in listing.entries] == [
        ("a", "directory"),
        ("b.txt", "file"),
        ("c", "symlink"),
    ]
    writing.abort()
    with pytest.raises(InvalidRequest, match="not a directory"):
        space.list("b.txt")
    with pytest.raises(NotFound):
        space.list("nope")


def test_mkdir_with_and_without_parents(space: Workspace) -> None:
    assert space.mkdir("x/y/z").path == "x/y/z"
    assert space.mkdir("x/y/z").type == "directory"  # already there: fine
    with pytest.raises(NotFound):
        space.mkdir("p/q", parents=False)
    upload(space, "file", b"f")
    with pytest.raises(Conflict):
        space.mkdir("file")


def test_remove_files_links_and_trees(space: Workspace, tmp_path: Path) -> None:
    outside = tmp_path / "keep"
    outside.mkdir()
    (outside / "precious").write_text("p")
    upload(space, "t/a/1", b"1")
    upload(space, "t/2", b"2")
    (space.root / "t" / "out").symlink_to(outside)
    with pytest.raises(Conflict, match="not empty"):
        space.remove("t")
    assert space.remove("t", recursive=True).removed == 5  # t, a, 1, 2, out
    assert (outside / "precious").exists()  # the link went, not its target
    with pytest.raises(InvalidRequest):
        space.remove(".")
    with pytest.raises(NotFound):
        space.remove("t")


def test_rename_moves_and_refuses_to_clobber(space: Workspace) -> None:
    upload(space, "a", b"A")
    upload(space, "b", b"B")
    with pytest.raises(Conflict):
        space.rename("a", "b")
    assert space.rename("a", "b", overwrite=True).size == 1
    assert (space.root / "b").read_bytes() == b"A"
    space.mkdir("d")
    assert space.rename("b", "d/c").path == "d/c"
    space.mkdir("e")
    with pytest.raises(Conflict):
        space.rename("d", "e")
    with pytest.raises(InvalidRequest, match="into itself"):
        space.rename("d", "d/inner")
    with pytest.raises(InvalidRequest):
        space.rename("d", "../d")


def test_stale_uploads_of_a_dead_server_are_removed_at_start(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / f"{UPLOAD_PREFIX}0123").write_bytes(b"partial")
    (tmp_path / "kept").write_bytes(b"k")
    space = Workspace(tmp_path, quota=0)
    assert leftovers(space) == []
    assert (tmp_path / "kept").exists()


def test_reserved_names_cannot_be_uploaded(space: Workspace) -> None:
    with pytest.raises(InvalidRequest, match="reserved"):
        space.begin_upload(f"{UPLOAD_PREFIX}x")


def test_a_name_too_long_is_invalid_not_internal(space: Workspace) -> None:
    with pytest.raises(InvalidRequest, match="name too long"):
        space.begin_upload("n" * 300)
    with pytest.raises(InvalidRequest, match="name too long"):
        space.stat("d" * 300 + "/f")


@pytest.mark.parametrize(
    ("number", "error"),
    [
        (errno.ENOENT, NotFound),
        (errno.EEXIST, Conflict),
        (errno.ENOTEMPTY, Conflict),
        (errno.ENOSPC, QuotaExceeded),
        (errno.EDQUOT, QuotaExceeded),
        (errno.EROFS, Unavailable),
        (errno.EACCES, InvalidRequest),
        (errno.EIO, InvalidRequest),
    ],
)
def test_os_errors_become_typed_errors(number: int, error: type[Exception]) -> None:
    assert type(typed(OSError(number, os.strerror(number)))) is error


def test_an_upload_says_whether_it_replaces_a_file(space: Workspace) -> None:
    with space.begin_upload("r.txt") as first:
        assert first.replaces is False
        first.write(b"one")
        first.commit()
    with space.begin_upload("r.txt") as second:
        assert second.replaces is True
        second.write(b"two")
        second.commit()
    assert (space.root / "r.txt").read_bytes() == b"two"


def test_a_reader_keeps_the_version_it_opened_when_another_is_renamed_over(
    space: Workspace,
) -> None:
    upload(space, "f.bin", b"a" * 3000)
    with space.open_reader("f.bin") as reader:
        assert reader.read(0, 1000) == b"a" * 1000
        upload(space, "f.bin", b"b" * 3000)  # renamed over the name
        assert reader.read(1000, 2000) == b"a" * 2000


@pytest.mark.parametrize("mode", ["r+b", "wb", "ab"])
def test_a_reader_refuses_to_go_on_once_its_file_is_written_in_place(
    space: Workspace, mode: str
) -> None:
    upload(space, "f.bin", b"a" * 3000)
    # An old mtime: a kernel with coarse timestamps would give the write the same one.
    os.utime(space.root / "f.bin", ns=(0, 0))
    with space.open_reader("f.bin") as reader:
        assert reader.read(0, 1000) == b"a" * 1000
        with (space.root / "f.bin").open(mode) as out:
            out.write(b"b" * 3000)
        with pytest.raises(FileChanged, match="changed while it was read") as refused:
            reader.read(1000, 2000)
    assert refused.value.code == ErrorCode.CONFLICT
    assert refused.value.data == {"reason": "file_changed"}


def test_a_first_read_starts_over_while_the_file_changes_then_gives_up(
    space: Workspace,
) -> None:
    upload(space, "f.bin", b"a" * 10)
    opened: list[int] = []

    def first(reader: FileReader) -> bytes:
        opened.append(reader.size)
        if len(opened) < 3:  # changed under the first two tries
            (space.root / "f.bin").write_bytes(b"b" * (10 + len(opened)))
        return reader.read(0, 100)

    reader, data = first_read(lambda: space.open_reader("f.bin"), first)
    with reader:
        assert (data, reader.size, opened) == (b"b" * 12, 12, [10, 11, 12])

    def always(reader: FileReader) -> bytes:
        (space.root / "f.bin").write_bytes(b"c" * (reader.size + 1))
        return reader.read(0, 100)

    with pytest.raises(FileChanged, match=r"\(3 tries\)"):
        first_read(lambda: space.open_reader("f.bin"), always)

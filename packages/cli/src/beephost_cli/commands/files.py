"""``beep-host cp`` and ``beep-host ls``: the files of a backend's workspace.

A remote path is ``BACKEND:PATH`` (``b-3f2a9c0d1e2f:data/in.csv``), or ``:PATH`` with
``--url``. As with ``docker cp``, an argument is remote when a ``:`` comes before any
``/``: write a local name that holds a colon as ``./a:b``. Transfers stream in chunks
both ways (nothing is held whole), with a progress bar on a terminal.
"""

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Annotated

import typer

from beephost_cli.commands._backend import (
    TokenFileOption,
    TokenOption,
    UrlOption,
    connect_backend,
)
from beephost_cli.commands._common import JsonOption
from beephost_cli.errors import Failure
from beephost_cli.output import Output, TransferProgress, age, size_text
from beephost_cli.state import state
from beephost_client import Client
from beephost_protocol.errors import NotFound
from beephost_protocol.files import FileInfo

RecursiveOption = Annotated[
    bool,
    typer.Option("--recursive", "-r", help="Copy a directory with its contents."),
]
STDIO = "-"


@dataclass(frozen=True)
class Remote:
    """A path in a backend's workspace; ``backend`` None: the one ``--url`` names."""

    backend: str | None
    path: str


@dataclass
class Copied:
    """What a copy did, for its closing line and ``--json``."""

    destination: str
    files: int = 0
    bytes: int = 0
    skipped: int = 0


def remote_of(argument: str) -> Remote | None:
    """The remote path an argument names, or None for a local one."""
    head, colon, tail = argument.partition(":")
    if not colon or "/" in head:
        return None
    return Remote(head or None, tail or ".")


def cp(
    ctx: typer.Context,
    source: Annotated[
        str, typer.Argument(help="LOCAL or BACKEND:PATH ('-': standard input).")
    ],
    destination: Annotated[
        str, typer.Argument(help="BACKEND:PATH or LOCAL ('-': standard output).")
    ],
    recursive: RecursiveOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
    token_file: TokenFileOption = None,
    json: JsonOption = False,
) -> None:
    """Copy files between this machine and a backend's workspace.

    The workspace is the directory the backend's code runs in (/workspace). Into an
    existing directory (or a PATH ending in /), a file keeps its name.

    Examples: beep-host cp data.csv b-3f2a9c0d1e2f:uploads/ ;
    beep-host cp -r b-3f2a9c0d1e2f:out ./results
    """
    remote_source, remote_destination = remote_of(source), remote_of(destination)
    if (remote_source is None) == (remote_destination is None):
        raise typer.BadParameter(
            "one of SOURCE and DESTINATION is BACKEND:PATH (or :PATH with --url), "
            "the other a local path",
            param_hint="SOURCE / DESTINATION",
        )
    remote = remote_source or remote_destination
    assert remote is not None
    _check_target(remote, url)
    out = state(ctx).output(json)
    with connect_backend(ctx, remote.backend, url, token, token_file) as client:
        if remote_destination is not None:
            copied = _upload(client, out, source, remote_destination.path, recursive)
        else:
            copied = _download(client, out, remote.path, destination, recursive)
    if out.json_mode:
        out.json(copied)
    elif destination != STDIO:
        skipped = f", {copied.skipped} skipped" if copied.skipped else ""
        out.done(
            f"copied {copied.files} file(s), {size_text(copied.bytes)}{skipped}, "
            f"to {copied.destination}"
        )


def ls(
    ctx: typer.Context,
    target: Annotated[
        str | None,
        typer.Argument(
            metavar="BACKEND[:PATH]",
            help="A backend and a path in its workspace (default: the workspace); "
            "with --url, just [:]PATH.",
            show_default=False,
        ),
    ] = None,
    url: UrlOption = None,
    token: TokenOption = None,
    token_file: TokenFileOption = None,
    json: JsonOption = False,
) -> None:
    """List a directory of a backend's workspace, or describe one file.

    Example: beep-host ls b-3f2a9c0d1e2f:uploads
    """
    if url is not None:
        remote = Remote(None, (target or ".").removeprefix(":") or ".")
    elif target is None:
        raise typer.BadParameter("name the backend: BACKEND[:PATH]")
    else:
        backend, _, path = target.partition(":")
        remote = Remote(backend, path or ".")
    _check_target(remote, url)
    out = state(ctx).output(json)
    with connect_backend(ctx, remote.backend, url, token, token_file) as client:
        found = client.files.stat(remote.path)
        entries = (
            [found] if found.type != "directory" else client.files.list(remote.path)
        )
    out.table(
        [entry.model_dump(mode="json") for entry in entries],
        ("type", "size", "modified", "name"),
        (
            [
                entry.type,
                size_text(entry.size) if entry.type == "file" else "",
                age(entry.mtime),
                entry.name + ("/" if entry.type == "directory" else ""),
            ]
            for entry in entries
        ),
        empty=f"{found.path}: empty",
    )


def _check_target(remote: Remote, url: str | None) -> None:
    if remote.backend is None and url is None:
        raise typer.BadParameter(
            ":PATH names the backend of --url URL: give one, or write BACKEND:PATH"
        )
    if remote.backend is not None and url is not None:
        raise typer.BadParameter(
            f"give either --url or a backend id, not both ({remote.backend}:...)",
            param_hint="'--url'",
        )


# -- into the workspace --------------------------------------------------------------


def _upload(
    client: Client, out: Output, local: str, target: str, recursive: bool
) -> Copied:
    if local == STDIO:
        info = client.files.write(target, sys.stdin.buffer)
        return Copied(info.path, 1, info.size)
    source = Path(local)
    if not source.exists():
        raise Failure(f"{local}: no such file or directory")
    root = _remote_destination(client, target, source.name)
    if not source.is_dir():
        with out.transfer("uploading", source.stat().st_size) as bar:
            info = client.files.write(root, source, on_progress=_Advance(bar))
        return Copied(info.path, 1, info.size)
    if not recursive:
        raise Failure(f"{local} is a directory", "pass -r to copy it with its contents")
    tree = _local_tree(source)
    copied = Copied(root, skipped=len(tree.skipped))
    client.files.mkdir(root)
    with out.transfer("uploading", sum(size for _, size in tree.files)) as bar:
        for directory in tree.directories:
            client.files.mkdir(f"{root}/{directory.as_posix()}")
        for relative, _ in tree.files:
            info = client.files.write(
                f"{root}/{relative.as_posix()}",
                source / relative,
                on_progress=_Advance(bar, relative.as_posix()),
            )
            copied.files, copied.bytes = copied.files + 1, copied.bytes + info.size
    for path in tree.skipped:
        out.note(f"skipped {path}: not a regular file or directory")
    return copied


def _remote_destination(client: Client, target: str, name: str) -> str:
    """Where ``name`` goes: inside ``target`` if it is a directory (or ends in /)."""
    if target.endswith("/") or target == ".":
        return f"{target.rstrip('/') or '.'}/{name}"
    try:
        inside = client.files.stat(target).type == "directory"
    except NotFound:
        inside = False
    return f"{target}/{name}" if inside else target


@dataclass
class _LocalTree:
    """A local directory's contents, relative to it: the subdirectories, the regular
    files with their sizes, and what is skipped (symlinks, devices, FIFOs: a
    workspace holds files and directories)."""

    directories: list[Path] = field(default_factory=list)
    files: list[tuple[Path, int]] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)


def _local_tree(root: Path) -> _LocalTree:
    """One walk of ``root`` (symlinked directories are not entered)."""
    tree = _LocalTree()
    for directory, dirnames, filenames in os.walk(root):
        here = Path(directory)
        for name in sorted(dirnames):
            path = here / name
            if path.is_symlink():
                tree.skipped.append(path)
            else:
                tree.directories.append(path.relative_to(root))
        for name in sorted(filenames):
            path = here / name
            if path.is_symlink() or not path.is_file():
                tree.skipped.append(path)
            else:
                tree.files.append((path.relative_to(root), path.stat().st_size))
    return tree


# -- out of the workspace ------------------------------------------------------------


def _download(
    client: Client, out: Output, path: str, local: str, recursive: bool
) -> Copied:
    found = client.files.stat(path)
    if found.type not in ("file", "directory"):
        raise Failure(f"{path} is a {found.type}: only files and directories copy")
    if local == STDIO:
        if found.type != "file":
            raise Failure(f"{path} is a directory: it cannot go to standard output")
        for chunk in client.files.iter_bytes(path):
            sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()
        return Copied(STDIO, 1, found.size)
    destination = Path(local)
    if found.type == "file":
        if destination.is_dir() or local.endswith("/"):
            destination = destination / found.name
        with out.transfer("downloading", found.size) as bar:
            client.files.download(path, destination, on_progress=_Advance(bar))
        return Copied(str(destination), 1, found.size)
    if not recursive:
        raise Failure(f"{path} is a directory", "pass -r to copy it with its contents")
    if destination.is_dir() and found.path != ".":
        destination = destination / found.name
    files, skipped = _remote_tree(client, found.path)
    copied = Copied(str(destination), skipped=len(skipped))
    destination.mkdir(parents=True, exist_ok=True)
    with out.transfer("downloading", sum(f.size for _, f in files)) as bar:
        for relative, info in files:
            local_path = destination / relative
            local_path.parent.mkdir(parents=True, exist_ok=True)
            client.files.download(
                info.path, local_path, on_progress=_Advance(bar, relative.as_posix())
            )
            copied.files, copied.bytes = copied.files + 1, copied.bytes + info.size
    for info in skipped:
        out.note(f"skipped {info.path}: a {info.type}")
    return copied


def _remote_tree(
    client: Client, root: str
) -> tuple[list[tuple[PurePosixPath, FileInfo]], list[FileInfo]]:
    """The files under a remote directory (relative, with their info), listed
    directory by directory, and what is skipped (symlinks, other)."""
    files: list[tuple[PurePosixPath, FileInfo]] = []
    skipped: list[FileInfo] = []
    pending = [(PurePosixPath(), root)]
    while pending:
        relative, directory = pending.pop()
        for entry in client.files.list(directory):
            if entry.name in ("", ".", "..") or "/" in entry.name:
                raise Failure(f"the backend listed an impossible name {entry.name!r}")
            if entry.type == "directory":
                pending.append((relative / entry.name, entry.path))
            elif entry.type == "file":
                files.append((relative / entry.name, entry))
            else:
                skipped.append(entry)
    return sorted(files, key=lambda item: item[0]), skipped


class _Advance:
    """An ``on_progress`` callback feeding a bar: the SDK reports bytes so far per
    file; the bar takes increments over all of them."""

    def __init__(self, bar: TransferProgress, name: str | None = None) -> None:
        self._bar = bar
        self._name = name
        self._seen = 0

    def __call__(self, done: int, total: int | None) -> None:
        self._bar.advance(done - self._seen, self._name)
        self._seen = done

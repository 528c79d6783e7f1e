"""``FakeRuntime``: an in-memory ``ContainerRuntime`` for unit tests and dry runs.

It keeps images, tags and a pretend registry in dictionaries and behaves like the
engine for the operations the controller uses. It cannot execute code: ``run``
answers only the CPython version probe (``python3 -c ... python_version()``), from the
version the image is known to carry; ``build_image`` and ``commit_run`` record their
inputs (the context's files, the run's files) and make the image as if the build or
command had succeeded, without reading a Dockerfile or running anything.
"""

import hashlib
import io
import json
import re
import shlex
import tarfile
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from beephost_controller.images.errors import BackendImageError, BaseImageError
from beephost_controller.images.keys import source_tree_hash
from beephost_controller.images.lockfile import parse_export
from beephost_controller.images.rootfs import RootfsPlan
from beephost_controller.ports import (
    ContainerRunError,
    ContainerRuntimeError,
    ImageInfo,
    ImageNotFoundError,
)

_LABEL_RE = re.compile(r'^LABEL ([A-Za-z0-9._/-]+)=(".*")$')


def _unquote_word(quoted: str) -> str:
    """A double-quoted Dockerfile word as the engine reads it in a ``LABEL``: inside
    the quotes a backslash escapes ``"``, ``\\`` and ``$``, and stays otherwise."""
    body, out, i = quoted[1:-1], [], 0
    while i < len(body):
        if body[i] == "\\" and i + 1 < len(body) and body[i + 1] in '"\\$':
            out.append(body[i + 1])
            i += 2
        else:
            out.append(body[i])
            i += 1
    return "".join(out)


@dataclass
class _Image:
    id: str
    labels: dict[str, str]
    size: int
    python_version: str | None
    parent: str | None = None
    repo_digests: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class CommitRun:
    """One ``FakeRuntime.commit_run`` call, with the files it was given."""

    image: str
    command: tuple[str, ...]
    tag: str
    user: str
    labels: Mapping[str, str]
    changes: tuple[str, ...]
    #: Container path of every regular file copied in -> its bytes at the call.
    files: Mapping[str, bytes]


@dataclass(frozen=True)
class ImageBuild:
    """One ``FakeRuntime.build_image`` call, with the context's files at the call."""

    dockerfile: str
    tag: str
    buildargs: Mapping[str, str]
    labels: Mapping[str, str]
    #: Every regular file of the context, relative (POSIX).
    files: frozenset[str]


@dataclass(frozen=True)
class RemoteImage:
    """An image the fake registry serves by digest."""

    python_version: str
    labels: Mapping[str, str] = field(default_factory=dict)
    size: int = 50_000_000


class FakeRuntime:
    """In-memory ``ContainerRuntime``.

    ``operations`` records every call that changed state (``("import", tag)``,
    ``("pull", ref)``...), so a test can assert that a cache hit did no work.

    Args:
        registry: ``"repository@sha256:..."`` to the image a pull of it yields.
    """

    def __init__(self, registry: Mapping[str, RemoteImage] | None = None) -> None:
        self.registry: dict[str, RemoteImage] = dict(registry or {})
        self.operations: list[tuple[str, str]] = []
        # What ``run`` reports as the CPython version, by image id or tag; tests set it
        # to simulate an interpreter that disagrees with the labels.
        self.python_versions: dict[str, str] = {}
        # Failures ``commit_run`` reports: a command whose text contains the key exits
        # with that status and output, like a failing install would.
        self.run_failures: dict[str, tuple[int, str]] = {}
        self.commit_runs: list[CommitRun] = []
        self.builds: list[ImageBuild] = []
        self._images: dict[str, _Image] = {}
        self._tags: dict[str, str] = {}
        self._counter = 0

    # -- helpers -----------------------------------------------------------------

    def _new_id(self, seed: str) -> str:
        self._counter += 1
        return (
            "sha256:" + hashlib.sha256(f"{self._counter}:{seed}".encode()).hexdigest()
        )

    def _resolve(self, ref: str) -> _Image | None:
        if ref in self._images:
            return self._images[ref]
        if ref in self._tags:
            return self._images[self._tags[ref]]
        if ":" not in ref.rsplit("/", 1)[-1] and f"{ref}:latest" in self._tags:
            return self._images[self._tags[f"{ref}:latest"]]
        for image in self._images.values():
            if ref in image.repo_digests:
                return image
        return None

    def _info(self, image: _Image) -> ImageInfo:
        tags = tuple(sorted(tag for tag, iid in self._tags.items() if iid == image.id))
        return ImageInfo(
            id=image.id,
            tags=tags,
            labels=dict(image.labels),
            size=image.size,
            repo_digests=tuple(image.repo_digests),
        )

    # -- ContainerRuntime ----------------------------------------------------------

    def get_image(self, ref: str) -> ImageInfo | None:
        """Inspect a local image; ``None`` if there is none by that reference."""
        image = self._resolve(ref)
        return None if image is None else self._info(image)

    def import_image(
        self, tarball: Path, tag: str, *, changes: Sequence[str] = ()
    ) -> ImageInfo:
        """Record an image for ``tarball``; ``LABEL`` changes become its labels.

        Raises:
            ContainerRuntimeError: The tarball is missing or a change is malformed.
        """
        if not tarball.is_file():
            raise ContainerRuntimeError(f"import {tarball}: no such file")
        labels: dict[str, str] = {}
        for change in changes:
            if change.startswith("LABEL "):
                match = _LABEL_RE.match(change)
                if match is None:
                    raise ContainerRuntimeError(f"import: malformed change {change!r}")
                labels[match.group(1)] = json.loads(match.group(2))
            elif not change.startswith(("ENV ", "CMD ", "WORKDIR ", "USER ")):
                raise ContainerRuntimeError(f"import: unsupported change {change!r}")
        image = _Image(
            id=self._new_id(str(tarball)),
            labels=labels,
            size=tarball.stat().st_size * 3,
            python_version=labels.get("io.beephost.python.version"),
        )
        self._images[image.id] = image
        self._tags[tag] = image.id
        self.operations.append(("import", tag))
        return self._info(image)

    def pull_image(self, repository: str, digest: str) -> ImageInfo:
        """Copy ``repository@digest`` from the fake registry.

        Raises:
            ImageNotFoundError: The fake registry has no such manifest.
        """
        ref = f"{repository}@{digest}"
        remote = self.registry.get(ref)
        if remote is None:
            raise ImageNotFoundError(f"pull {ref}: manifest unknown")
        self.operations.append(("pull", ref))
        existing = self._resolve(ref)
        if existing is not None:
            return self._info(existing)
        image = _Image(
            id=self._new_id(ref),
            labels=dict(remote.labels),
            size=remote.size,
            python_version=remote.python_version,
            repo_digests=[ref],
        )
        self._images[image.id] = image
        return self._info(image)

    def tag_image(self, ref: str, tag: str) -> None:
        """Point ``tag`` at the image ``ref``.

        Raises:
            ImageNotFoundError: ``ref`` does not exist.
        """
        image = self._resolve(ref)
        if image is None:
            raise ImageNotFoundError(f"tag {ref}: no such image")
        self._tags[tag] = image.id
        self.operations.append(("tag", tag))

    def build_labelled_image(
        self, base: str, tag: str, labels: Mapping[str, str]
    ) -> ImageInfo:
        """Record a child of ``base`` with ``labels`` merged over the base's.

        Raises:
            ImageNotFoundError: ``base`` does not exist locally (the fake never pulls).
        """
        parent = self._resolve(base)
        if parent is None:
            raise ImageNotFoundError(f"build: base image {base} not found")
        image = _Image(
            id=self._new_id(f"{parent.id}{sorted(labels.items())}"),
            labels={**parent.labels, **labels},
            size=parent.size,
            python_version=parent.python_version,
            parent=parent.id,
        )
        self._images[image.id] = image
        self._tags[tag] = image.id
        self.operations.append(("build", tag))
        return self._info(image)

    def build_image(
        self,
        context: Path,
        *,
        dockerfile: str,
        tag: str,
        buildargs: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> ImageInfo:
        """Record the build (``builds``) and an image tagged ``tag`` with ``labels``.

        The Dockerfile is not interpreted (the engine's builds are tested against the
        engine): the image is a child of the ``BASE_IMAGE`` build argument if there is
        one, with its labels and ``labels`` over them, as the builders pass them.

        Raises:
            ImageNotFoundError: ``BASE_IMAGE`` is not local (the fake never pulls).
            ContainerRuntimeError: No Dockerfile in the context.
        """
        if not (context / dockerfile).is_file():
            raise ContainerRuntimeError(f"build {tag}: no {dockerfile} in {context}")
        args = dict(buildargs or {})
        parent = None
        if "BASE_IMAGE" in args:
            parent = self._resolve(args["BASE_IMAGE"])
            if parent is None:
                raise ImageNotFoundError(
                    f"build {tag}: base image {args['BASE_IMAGE']} not found"
                )
        files = frozenset(
            path.relative_to(context).as_posix()
            for path in context.rglob("*")
            if path.is_file()
        )
        self.builds.append(ImageBuild(dockerfile, tag, args, dict(labels or {}), files))
        image = _Image(
            id=self._new_id(f"{tag}{sorted(args.items())}"),
            labels={**(parent.labels if parent else {}), **(labels or {})},
            size=(parent.size if parent else 0)
            + sum((context / name).stat().st_size for name in files),
            python_version=parent.python_version if parent else None,
            parent=parent.id if parent else None,
        )
        self._images[image.id] = image
        self._tags[tag] = image.id
        self.operations.append(("build-image", tag))
        return self._info(image)

    def run(
        self,
        image: str,
        command: Sequence[str],
        *,
        labels: Mapping[str, str] | None = None,
        timeout: float = 60.0,
    ) -> str:
        """Answer the CPython version probe for ``image``.

        Raises:
            ImageNotFoundError: No such image.
            ContainerRunError: The command is not a version probe, or the image has
                no known CPython.
        """
        found = self._resolve(image)
        if found is None:
            raise ImageNotFoundError(f"run: image {image} not found")
        self.operations.append(("run", image))
        version = self.python_versions.get(found.id, found.python_version)
        for tag, image_id in self._tags.items():
            if image_id == found.id and tag in self.python_versions:
                version = self.python_versions[tag]
        if "python_version()" not in shlex.join(command) or version is None:
            raise ContainerRunError(
                f"FakeRuntime cannot run {list(command)}", exit_code=127, output=""
            )
        return version + "\n"

    def commit_run(
        self,
        image: str,
        command: Sequence[str],
        *,
        tag: str,
        user: str,
        files: Mapping[Path, str] | None = None,
        labels: Mapping[str, str] | None = None,
        changes: Sequence[str] = (),
        timeout: float = 600.0,
    ) -> ImageInfo:
        """Record the run (``commit_runs``) and a child of ``image`` tagged ``tag``.

        The command is not executed. The child's labels are the image's, then the
        run's, then those of the ``LABEL`` changes, as an engine's commit merges them.

        Raises:
            ImageNotFoundError: No such image.
            ContainerRuntimeError: A directory of ``files`` is missing, or a change is
                malformed or not one a commit accepts.
            ContainerRunError: The command matches one of ``run_failures``.
        """
        parent = self._resolve(image)
        if parent is None:
            raise ImageNotFoundError(f"commit_run: image {image} not found")
        copied: dict[str, bytes] = {}
        for host, target in (files or {}).items():
            if not host.is_dir():
                raise ContainerRuntimeError(f"commit_run: no directory {host}")
            for path in sorted(host.rglob("*")):
                if path.is_file():
                    relative = path.relative_to(host).as_posix()
                    copied[f"{target.rstrip('/')}/{relative}"] = path.read_bytes()
        changed: dict[str, str] = {}
        for change in changes:
            if change.startswith("LABEL "):
                match = _LABEL_RE.match(change)
                if match is None:
                    raise ContainerRuntimeError(f"commit: malformed change {change!r}")
                changed[match.group(1)] = _unquote_word(match.group(2))
            elif not change.startswith(
                ("ENV ", "CMD ", "ENTRYPOINT ", "WORKDIR ", "USER ", "EXPOSE ")
            ):
                raise ContainerRuntimeError(f"commit: unsupported change {change!r}")
        self.commit_runs.append(
            CommitRun(
                image=image,
                command=tuple(command),
                tag=tag,
                user=user,
                labels=dict(labels or {}),
                changes=tuple(changes),
                files=copied,
            )
        )
        self.operations.append(("commit-run", tag))
        text = shlex.join(command)
        for needle, (exit_code, output) in self.run_failures.items():
            if needle in text:
                raise ContainerRunError(
                    f"{list(command)} in {image} exited with {exit_code}: "
                    f"{output.strip()[-3000:]}",
                    exit_code=exit_code,
                    output=output,
                )
        child = _Image(
            id=self._new_id(f"{parent.id}{text}{tag}"),
            labels={**parent.labels, **(labels or {}), **changed},
            size=parent.size + sum(len(data) for data in copied.values()),
            python_version=parent.python_version,
            parent=parent.id,
        )
        self._images[child.id] = child
        self._tags[tag] = child.id
        return self._info(child)

    def remove_image(self, ref: str, *, force: bool = False) -> None:
        """Untag ``ref`` if it is one of several references, else delete the image.

        Raises:
            ImageNotFoundError: No such image.
            ContainerRuntimeError: The image has children, or several tags and no force.
        """
        image = self._resolve(ref)
        if image is None:
            raise ImageNotFoundError(f"remove {ref}: no such image")
        tags = [tag for tag, iid in self._tags.items() if iid == image.id]
        references = len(tags) + len(image.repo_digests)
        has_children = any(other.parent == image.id for other in self._images.values())
        if ref != image.id:
            # By reference, like `docker rmi repo:tag`: untag, and delete the image
            # only if that was its last reference and nothing is built on it.
            self._tags.pop(ref, None)
            if ref in image.repo_digests:
                image.repo_digests.remove(ref)
            if references == 1 and not has_children:
                del self._images[image.id]
        else:
            if has_children:
                raise ContainerRuntimeError(
                    f"remove {ref}: image has dependent children"
                )
            if references > 1 and not force:
                raise ContainerRuntimeError(
                    f"remove {ref}: image is referenced by tags"
                )
            for tag in tags:
                del self._tags[tag]
            del self._images[image.id]
        self.operations.append(("remove", ref))

    def remove_by_labels(self, labels: Mapping[str, str]) -> list[str]:
        """Delete every image carrying all of ``labels``, children first.

        Raises:
            ValueError: ``labels`` is empty.
        """
        if not labels:
            raise ValueError("refusing to remove by an empty label selector")
        matching = [
            image
            for image in self._images.values()
            if all(image.labels.get(key) == value for key, value in labels.items())
        ]
        # Children were created after their parents: remove newest first.
        matching.sort(key=lambda image: image.parent is None)
        removed = []
        for image in matching:
            for tag in [tag for tag, iid in self._tags.items() if iid == image.id]:
                del self._tags[tag]
            del self._images[image.id]
            removed.append(image.id)
        self.operations.append(("remove-by-labels", json.dumps(dict(labels))))
        return removed


#: Debian package versions the fake builder writes into its dpkg status.
FAKE_DEBIAN_VERSIONS: Mapping[str, str] = {
    "3.11": "3.11.2-6+deb12u6",
    "3.13": "3.13.5-2",
    "3.14": "3.14.0~rc3-1",
}


class FakeRootfsBuilder:
    """``RootfsBuilder`` that writes a tiny rootfs tarball instead of running mmdebstrap.

    The tarball has what ``ensure_base_image`` checks: a dpkg status with the
    interpreter package, ``python3``/``python`` and the CA bundle.

    Args:
        versions: CPython minor to the Debian version of ``pythonX.Y-minimal``.
        omit: Paths (``etc/ssl/certs/ca-certificates.crt``...) to leave out.
    """

    def __init__(
        self,
        versions: Mapping[str, str] | None = None,
        omit: frozenset[str] = frozenset(),
    ) -> None:
        self.versions = dict(FAKE_DEBIAN_VERSIONS if versions is None else versions)
        self.omit = omit
        self.builds: list[RootfsPlan] = []

    def build(self, plan: RootfsPlan, output: Path) -> None:
        """Write the fake rootfs for ``plan`` to ``output``.

        Raises:
            BaseImageError: No version is configured for the plan's minor.
        """
        version = self.versions.get(plan.python_minor)
        if version is None:
            raise BaseImageError(f"fake builder: no python{plan.python_minor}")
        self.builds.append(plan)
        status = (
            f"Package: python{plan.python_minor}-minimal\n"
            "Status: install ok unpacked\n"
            "Architecture: amd64\n"
            f"Version: {version}\n"
            "Description: Minimal subset of the Python language\n"
            " continuation line\n\n"
            "Package: dash\nStatus: install ok unpacked\nVersion: 0.5.12-2\n"
        )
        files = {
            "var/lib/dpkg/status": status.encode(),
            f"usr/bin/python{plan.python_minor}": b"\x7fELF fake\n",
            "etc/ssl/certs/ca-certificates.crt": b"-----BEGIN CERTIFICATE-----\n",
        }
        links = {
            "usr/bin/python3": f"python{plan.python_minor}",
            "usr/bin/python": "python3",
        }
        with tarfile.open(output, "w:gz") as archive:
            for name, data in files.items():
                if name in self.omit:
                    continue
                member = tarfile.TarInfo(f"./{name}")
                member.size = len(data)
                archive.addfile(member, io.BytesIO(data))
            for name, target in links.items():
                if name in self.omit:
                    continue
                member = tarfile.TarInfo(f"./{name}")
                member.type = tarfile.SYMTYPE
                member.linkname = target
                archive.addfile(member)


#: What ``FakeWheelhouseTools`` exports for a backend when it is told nothing else.
FAKE_REQUIREMENTS: tuple[str, ...] = (
    "pydantic==2.14.3",
    "pydantic-core==2.50.4",
    "typing-extensions==4.16.0",
)
FAKE_PYTHON_MINORS = ("3.11", "3.13", "3.14")


def fake_wheel_bytes(name: str, version: str, python_minor: str) -> bytes:
    """The bytes ``FakeWheelhouseTools.download`` writes for one requirement."""
    return f"fake wheel {name} {version} cp{python_minor}\n".encode()


class FakeWheelhouseTools:
    """``WheelhouseTools`` without uv, pip or network.

    ``export`` answers from ``requirements`` (hashes are those of the bytes ``download``
    writes, one per CPython minor, as a lock lists one per platform), ``build_wheel``
    reads the member's ``pyproject.toml`` and writes a wheel whose bytes follow the
    member's source tree, and every call is recorded.

    Args:
        requirements: Backend package -> ``name==version[ ; marker]`` lines.
        unavailable: Requirement names ``download`` has no wheel for.
        installer: What ``installer()`` reports.
        uv_binary: The binary ``installer()`` offers for the images (None: pip).
    """

    def __init__(
        self,
        requirements: Mapping[str, Sequence[str]] | None = None,
        unavailable: frozenset[str] = frozenset(),
        installer: str = "uv 0.0.0+fake",
        uv_binary: Path | None = None,
    ) -> None:
        self.requirements = {k: tuple(v) for k, v in (requirements or {}).items()}
        self.unavailable = unavailable
        self.installer_name = installer
        self.uv_binary = uv_binary
        self.exports: list[str] = []
        self.built: list[str] = []
        self.downloads: list[tuple[str, ...]] = []

    def export(self, workspace: Path, package: str) -> str:
        """A ``uv export`` text: core, protocol and the backend, then hashed pins."""
        self.exports.append(package)
        service = package.removeprefix("beephost-")
        lines = ["./packages/core", "./packages/protocol", f"./services/{service}"]
        for requirement in self.requirements.get(package, FAKE_REQUIREMENTS):
            pin, _, marker = requirement.partition(";")
            name, _, version = pin.strip().partition("==")
            hashes = [
                hashlib.sha256(fake_wheel_bytes(name, version, minor)).hexdigest()
                for minor in FAKE_PYTHON_MINORS
            ]
            head = pin.strip() + (f" ; {marker.strip()}" if marker else "")
            lines.append(f"{head} \\")
            lines += [f"    --hash=sha256:{digest} \\" for digest in hashes[:-1]]
            lines.append(f"    --hash=sha256:{hashes[-1]}")
        return "\n".join(lines) + "\n"

    def build_wheel(self, workspace: Path, member: str, outdir: Path) -> Path:
        """Write ``<name>-<version>-py3-none-any.whl`` for the member's source tree.

        Raises:
            BackendImageError: The member has no readable ``pyproject.toml``.
        """
        try:
            project = tomllib.loads((workspace / member / "pyproject.toml").read_text())
            name, version = project["project"]["name"], project["project"]["version"]
        except (OSError, KeyError, tomllib.TOMLDecodeError) as exc:
            raise BackendImageError(f"fake build of {member}: {exc}") from exc
        self.built.append(member)
        wheel = outdir / f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
        wheel.write_text(f"fake wheel {name} {source_tree_hash(workspace / member)}\n")
        return wheel

    def download(self, lines: Sequence[str], python_minor: str, dest: Path) -> None:
        """Write each requirement's fake wheel, checking its hash like pip would.

        Raises:
            BackendImageError: A requirement is unavailable or its hash is not listed.
        """
        self.downloads.append(tuple(lines))
        for requirement in parse_export("\n".join(lines)).requirements:
            if requirement.name in self.unavailable:
                raise BackendImageError(f"no wheel for {requirement.name}")
            data = fake_wheel_bytes(requirement.name, requirement.version, python_minor)
            if f"sha256:{hashlib.sha256(data).hexdigest()}" not in requirement.hashes:
                raise BackendImageError(f"hash mismatch for {requirement.name}")
            tag = f"cp{python_minor.replace('.', '')}"
            filename = f"{requirement.name.replace('-', '_')}-{requirement.version}-{tag}-{tag}-manylinux_2_17_x86_64.whl"
            (dest / filename).write_bytes(data)

    def installer(self) -> tuple[str, Path | None]:
        """The configured installer description and binary."""
        return self.installer_name, self.uv_binary


# -- In-memory ImageBuilder and BackendContainers -------------------------------------
# Kept apart from the runtime fakes above (with their own imports) so that either part
# can be rewritten without touching the other.

import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import replace  # noqa: E402

from beephost_controller.jobs import JobLog  # noqa: E402
from beephost_controller.ports import (  # noqa: E402
    BaseImageRef,
    ContainerSpec,
    ContainerState,
)
from beephost_controller.resolver import Lock  # noqa: E402

#: What MemoryImageBuilder logs for a build, one line per step.
BUILD_STEPS = (
    "Step 1/3 : FROM base",
    "Step 2/3 : RUN uv pip install",
    "Step 3/3 : COPY",
)


class MemoryImageBuilder:
    """An ``ImageBuilder`` without an engine: images are tags in a set.

    A build logs BUILD_STEPS, ``step_seconds`` apart (a live log to follow), then
    fails with ``fail`` if it is set, else records the tag.
    """

    def __init__(
        self,
        *,
        fail: str | None = None,
        step_seconds: float = 0.0,
        code_version: str = "memory",
    ) -> None:
        self.code_version = code_version
        self.fail = fail
        self.step_seconds = step_seconds
        self.images: set[str] = set()
        #: Every tag built, in order (an equal environment builds nothing).
        self.builds: list[str] = []

    def ensure_base(self, python: str, log: Callable[[str], None]) -> BaseImageRef:
        log(f"importing rootfs for CPython {python}")
        return BaseImageRef(
            python,
            f"beephost/python:{python}",
            f"sha256:base{python}",
            f"{python}.0",
            "debian",
        )

    def image_exists(self, tag: str) -> bool:
        return tag in self.images

    def build_environment(
        self, *, base: BaseImageRef, lock: Lock, tag: str, admin: bool, log: JobLog
    ) -> None:
        for step in BUILD_STEPS:
            time.sleep(self.step_seconds)
            log(step)
        if self.fail:
            raise RuntimeError(self.fail)
        log(f"installing {lock.text.count('==')} packages")
        self.builds.append(tag)
        self.images.add(tag)


class MemoryContainers:
    """A ``BackendContainers`` without an engine: it records specs and plays back
    states (a started container is running, healthy unless ``healthy=False``)."""

    def __init__(self, *, healthy: bool = True) -> None:
        self.containers: dict[str, ContainerState] = {}
        self.networks: dict[str, Mapping[str, str]] = {}
        self.specs: dict[str, ContainerSpec] = {}
        self.starts: list[str] = []
        #: Health right after a start: Docker's first check comes later.
        self.healthy = healthy

    def exit(self, name: str, exit_code: int, *, oom: bool = False) -> None:
        """The container's process ended (crash, kill or OOM)."""
        self.containers[name] = replace(
            self.containers[name],
            status="exited",
            health=None,
            exit_code=exit_code,
            oom_killed=oom,
        )

    def create_network(self, name: str, labels: Mapping[str, str]) -> None:
        self.networks[name] = dict(labels)

    def remove_network(self, name: str) -> None:
        self.networks.pop(name, None)

    def create_container(self, spec: ContainerSpec) -> str:
        cid = f"c{len(self.specs)}"
        self.specs[spec.name] = spec
        self.containers[spec.name] = ContainerState(
            cid,
            spec.name,
            dict(spec.labels),
            "created",
            None,
            0,
            False,
            0,
            {5678: 40000},
        )
        return cid

    def _find(self, ref: str) -> str | None:
        return next((n for n, s in self.containers.items() if ref in (n, s.id)), None)

    def start_container(self, ref: str) -> None:
        name = self._find(ref)
        if name is None:
            raise ContainerRuntimeError(f"no container {ref}")
        self.starts.append(name)
        self.containers[name] = replace(
            self.containers[name],
            status="running",
            health="healthy" if self.healthy else "starting",
            exit_code=0,
            oom_killed=False,
        )

    def container_state(self, ref: str) -> ContainerState | None:
        name = self._find(ref)
        return None if name is None else self.containers[name]

    def remove_container(self, ref: str) -> None:
        name = self._find(ref)
        if name is not None:
            del self.containers[name]

    def container_logs(self, ref: str, tail: int) -> str:
        return ""

    def list_containers(self, labels: Mapping[str, str]) -> list[ContainerState]:
        return [
            s
            for s in self.containers.values()
            if all(s.labels.get(k) == v for k, v in labels.items())
        ]

    def list_networks(self, labels: Mapping[str, str]) -> list[str]:
        return [
            n
            for n, lab in self.networks.items()
            if all(lab.get(k) == v for k, v in labels.items())
        ]

"""``FakeEngine``: an in-memory ``ContainerEngine`` for unit tests and dry runs.

It keeps images, tags and a pretend registry in dictionaries and behaves like the
engine for the operations the controller uses. It cannot execute code: ``run``
answers only the CPython version probe (``python3 -c ... python_version()``), from the
version the image is known to carry; ``build_image`` and ``commit_run`` record their
inputs (the context's files, the run's files) and make the image as if the build or
command had succeeded, without reading a Dockerfile or running anything.
"""

import json
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path

from beephost_controller.ports import (
    ContainerEngineError,
    ContainerRunError,
    ImageInfo,
    ImageNotFoundError,
)
from beephost_controller.specs import CommitRunSpec, ImageBuildSpec, RunSpec
from beephost_controller.testing.changes import change_labels, unquote_word
from beephost_controller.testing.images import FakeImage, FakeImages
from beephost_controller.testing.records import CommitRun, ImageBuild, RemoteImage


class FakeEngine(FakeImages):
    """In-memory ``ContainerEngine``.

    ``operations`` records every call that changed state (``("import", tag)``,
    ``("pull", ref)``...), so a test can assert that a cache hit did no work.

    Args:
        registry: ``"repository@sha256:..."`` to the image a pull of it yields.
    """

    def __init__(self, registry: Mapping[str, RemoteImage] | None = None) -> None:
        super().__init__()
        self.registry: dict[str, RemoteImage] = dict(registry or {})
        # What ``run`` reports as the CPython version, by image id or tag; tests set it
        # to simulate an interpreter that disagrees with the labels.
        self.python_versions: dict[str, str] = {}
        # Failures ``commit_run`` reports: a command whose text contains the key exits
        # with that status and output, like a failing install would.
        self.run_failures: dict[str, tuple[int, str]] = {}
        self.commit_runs: list[CommitRun] = []
        self.builds: list[ImageBuild] = []

    # -- ContainerEngine ----------------------------------------------------------

    def import_image(
        self, tarball: Path, tag: str, *, changes: Sequence[str] = ()
    ) -> ImageInfo:
        """Record an image for ``tarball``; ``LABEL`` changes become its labels.

        Raises:
            ContainerEngineError: The tarball is missing or a change is malformed.
        """
        if not tarball.is_file():
            raise ContainerEngineError(f"import {tarball}: no such file")
        labels = change_labels(
            changes,
            operation="import",
            accepted=("ENV ", "CMD ", "WORKDIR ", "USER "),
            unquote=json.loads,
        )
        image = FakeImage(
            id=self._new_id(str(tarball)),
            labels=labels,
            size=tarball.stat().st_size * 3,
            python_version=labels.get("io.beephost.python.version"),
        )
        self._add(image, tag)
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
        image = FakeImage(
            id=self._new_id(ref),
            labels=dict(remote.labels),
            size=remote.size,
            python_version=remote.python_version,
            repo_digests=[ref],
        )
        self._images[image.id] = image
        return self._info(image)

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
        image = FakeImage(
            id=self._new_id(f"{parent.id}{sorted(labels.items())}"),
            labels={**parent.labels, **labels},
            size=parent.size,
            python_version=parent.python_version,
            parent=parent.id,
        )
        self._add(image, tag)
        self.operations.append(("build", tag))
        return self._info(image)

    def build_image(self, build: ImageBuildSpec) -> ImageInfo:
        """Record the build (``builds``) and an image tagged ``build.tag`` with
        ``build.labels``.

        The Dockerfile is not interpreted (the engine's builds are tested against the
        engine): the image is a child of the ``BASE_IMAGE`` build argument if there is
        one, with its labels and ``build.labels`` over them, as the builders pass them.

        Raises:
            ImageNotFoundError: ``BASE_IMAGE`` is not local (the fake never pulls).
            ContainerEngineError: No Dockerfile in the context.
        """
        context, dockerfile, tag = build.context, build.dockerfile, build.tag
        if not (context / dockerfile).is_file():
            raise ContainerEngineError(f"build {tag}: no {dockerfile} in {context}")
        args = dict(build.buildargs)
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
        self.builds.append(ImageBuild(build, files))
        image = FakeImage(
            id=self._new_id(f"{tag}{sorted(args.items())}"),
            labels={**(parent.labels if parent else {}), **build.labels},
            size=(parent.size if parent else 0)
            + sum((context / name).stat().st_size for name in files),
            python_version=parent.python_version if parent else None,
            parent=parent.id if parent else None,
        )
        self._add(image, tag)
        self.operations.append(("build-image", tag))
        return self._info(image)

    def run(self, spec: RunSpec) -> str:
        """Answer the CPython version probe for ``spec.image``.

        Raises:
            ImageNotFoundError: No such image.
            ContainerRunError: The command is not a version probe, or the image has
                no known CPython.
        """
        image, command = spec.image, spec.command
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
                f"FakeEngine cannot run {list(command)}", exit_code=127, output=""
            )
        return version + "\n"

    def commit_run(self, run: CommitRunSpec) -> ImageInfo:
        """Record the run (``commit_runs``) and a child of ``run.image`` tagged
        ``run.tag``.

        The command is not executed. The child's labels are the image's, then the
        run's, then those of the ``LABEL`` changes, as an engine's commit merges them.

        Raises:
            ImageNotFoundError: No such image.
            ContainerEngineError: A directory of ``run.files`` is missing, or a change
                is malformed or not one a commit accepts.
            ContainerRunError: The command matches one of ``run_failures``.
        """
        image, command, tag = run.image, run.command, run.tag
        parent = self._resolve(image)
        if parent is None:
            raise ImageNotFoundError(f"commit_run: image {image} not found")
        copied: dict[str, bytes] = {}
        for host, target in run.files.items():
            if not host.is_dir():
                raise ContainerEngineError(f"commit_run: no directory {host}")
            for path in sorted(host.rglob("*")):
                if path.is_file():
                    relative = path.relative_to(host).as_posix()
                    copied[f"{target.rstrip('/')}/{relative}"] = path.read_bytes()
        changed = change_labels(
            run.changes,
            operation="commit",
            accepted=("ENV ", "CMD ", "ENTRYPOINT ", "WORKDIR ", "USER ", "EXPOSE "),
            unquote=unquote_word,
        )
        self.commit_runs.append(CommitRun(run, copied))
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
        child = FakeImage(
            id=self._new_id(f"{parent.id}{text}{tag}"),
            labels={**parent.labels, **run.labels, **changed},
            size=parent.size + sum(len(data) for data in copied.values()),
            python_version=parent.python_version,
            parent=parent.id,
        )
        self._add(child, tag)
        return self._info(child)

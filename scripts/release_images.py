"""The image-building commands: ``scripts/build-images`` and ``scripts/build-base-image``.

Not part of the controller's runtime: the scripts run this module
(``python -m scripts.release_images``) on a host, from the repository root.

Example:
    python -m scripts.release_images build-images --python 3.11 --controller
"""

import argparse
import json
import logging
import shlex
import sys
import time
from collections.abc import Callable, Mapping, Sequence

from pydantic import ValidationError
from scripts.controller_image import (
    ensure_controller_image,
    export_wheelhouse,
    manual_build_command,
)

from beephost_controller.engine.docker_images import DockerEngine
from beephost_controller.images.backend import (
    BackendImage,
    ensure_backend_image,
)
from beephost_controller.images.base import ensure_base_image
from beephost_controller.images.base_source import BaseImage
from beephost_controller.images.environment import workspace_code_version
from beephost_controller.images.errors import ImageError
from beephost_controller.images.inputs import BuildInputs
from beephost_controller.images.layout import (
    CONTROLLER,
    ImageKind,
    service_name,
)
from beephost_controller.images.servers import ensure_servers_image
from beephost_controller.ports import ContainerEngine, ContainerEngineError
from beephost_controller.schemas import BACKEND_TYPES, BackendType
from beephost_controller.settings import Settings

logger = logging.getLogger(__name__)


# -- command line ---------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="release_images",
        description="Build (or find) the base, backend and controller images, offline.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    base = commands.add_parser(
        "build-base-image",
        help="Build (or find) pinned-CPython base images for the controller.",
    )
    base.add_argument(
        "--python",
        action="append",
        required=True,
        metavar="X.Y",
        help="CPython minor version; repeat for several (3.11, 3.13, 3.14).",
    )
    base.add_argument(
        "--refresh",
        action="store_true",
        help="Rebuild the rootfs (or re-pull) even if an image or tarball exists.",
    )
    images = commands.add_parser(
        "build-images", help="Build (or find) the base and backend images, offline."
    )
    images.add_argument(
        "--python",
        action="append",
        metavar="X.Y",
        help="CPython minor version; repeat for several (default: 3.11).",
    )
    images.add_argument(
        "--backend",
        action="append",
        choices=BACKEND_TYPES,
        help=(
            "Backend to build; repeat for several (default: all three, or none "
            "with --controller)."
        ),
    )
    images.add_argument(
        "--controller",
        action="store_true",
        help=(
            "Also build the controller's image (beephost/controller:<X.Y>-<key>, "
            ":<X.Y> and :local); alone unless --backend is given."
        ),
    )
    images.add_argument(
        "--refresh", action="store_true", help="Rebuild even if the tag exists."
    )
    images.add_argument(
        "--export-wheelhouse",
        action="store_true",
        help=(
            "Only write build/wheelhouse/<kind>-backend (or .../controller) and "
            "print the `docker build` that builds the image from it by hand."
        ),
    )
    for command in (base, images):
        command.add_argument(
            "--json", action="store_true", help="One JSON object per line."
        )
    return parser


def _emit(record: Mapping[str, object], *, as_json: bool) -> None:
    if as_json:
        line = json.dumps(record)
    else:
        line = " ".join(f"{key}={_text(value)}" for key, value in record.items())
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _text(value: object) -> str:
    """A record's value as one shell word (a command line is quoted whole)."""
    return str(value).lower() if isinstance(value, bool) else shlex.quote(str(value))


def _base_record(base: BaseImage, seconds: float) -> dict[str, object]:
    return {
        "tag": base.tag,
        "id": base.image_id,
        "version": base.python_version,
        "sha256": base.rootfs_sha256 or base.digest or "",
        "source": base.source,
        "built": base.built,
        "size_mb": round(base.size / 1e6, 1),
        "seconds": round(seconds, 1),
    }


def _image_record(image: BackendImage) -> dict[str, object]:
    record: dict[str, object] = {
        "image": service_name(image.kind),
        "tag": image.tag,
        "alias": image.alias,
    }
    if len(image.aliases) > 1:
        record["aliases"] = ",".join(image.aliases)
    record.update(
        {
            "id": image.image_id,
            "python": image.python_version,
            "code": image.code_version,
            "built": image.built,
            "size_mb": round(image.size / 1e6, 1),
            "seconds": round(image.seconds, 1),
        }
    )
    return record


def _build(
    args: argparse.Namespace,
    settings: Settings,
    runtime: ContainerEngine,
    emit: Callable[[Mapping[str, object]], None],
) -> None:
    """One command's images, in order; each line is printed as soon as it is known."""
    if args.command == "build-base-image":
        for python in args.python:
            started = time.monotonic()
            base = ensure_base_image(
                python, settings, runtime=runtime, refresh=args.refresh
            )
            emit(_base_record(base, time.monotonic() - started))
        return
    inputs = BuildInputs()
    kinds: list[BackendType] = list(
        args.backend or ([] if args.controller else BACKEND_TYPES)
    )
    for python in args.python or ["3.11"]:
        started = time.monotonic()
        base = ensure_base_image(python, settings, runtime=runtime)
        emit(
            {
                "image": "base",
                "tag": base.tag,
                "id": base.image_id,
                "python": base.python_version,
                "built": base.built,
                "size_mb": round(base.size / 1e6, 1),
                "seconds": round(time.monotonic() - started, 1),
            }
        )
        backends: dict[BackendType, BackendImage] = {}
        # --export-wheelhouse: only the wheelhouses of what would be built.
        exports: list[ImageKind] = [*kinds, *([CONTROLLER] if args.controller else [])]
        for kind in exports if args.export_wheelhouse else []:
            started = time.monotonic()
            path = export_wheelhouse(kind, base, inputs)
            emit(
                {
                    "image": service_name(kind),
                    "wheelhouse": str(path.relative_to(inputs.workspace)),
                    "base": base.tag,
                    "docker_build": shlex.join(
                        manual_build_command(
                            kind, base, f"beephost/{service_name(kind)}:manual"
                        )
                    ),
                    "seconds": round(time.monotonic() - started, 1),
                }
            )
        if args.export_wheelhouse:
            continue
        for kind in kinds:
            image = ensure_backend_image(
                kind, base, runtime, inputs, refresh=args.refresh
            )
            backends[kind] = image
            emit(_image_record(image))
        if len(backends) == len(BACKEND_TYPES):
            # What a runtime's first environment build would otherwise spend ~25 s on
            # (docs/operators/images.md): found by tag by a controller with the
            # default labels and backend repositories, as compose runs it.
            started = time.monotonic()
            servers = ensure_servers_image(
                base=base,
                backends=backends,
                runtime=runtime,
                code=workspace_code_version(inputs.workspace, inputs.tools),
                inputs=inputs,
            )
            emit(
                {
                    "image": "servers",
                    "tag": servers.tag,
                    "id": servers.image_id,
                    "built": servers.built,
                    "seconds": round(time.monotonic() - started, 1),
                }
            )
        if args.controller:
            image = ensure_controller_image(base, runtime, inputs, refresh=args.refresh)
            emit(_image_record(image))


def main(argv: Sequence[str] | None = None) -> int:
    """``build-images ...`` (``scripts/build-images``): base images, then the backend
    images on them, and with ``--controller`` the controller's image (alone without
    ``--backend``); ``build-base-image ...`` (``scripts/build-base-image``): base
    images only.

    Prints one ``key=value`` line per image (a JSON object with ``--json``) on stdout;
    logs go to stderr. Settings come from ``BEEPHOST_CONTROLLER_*``.

    Returns:
        0 on success, 1 if an image could not be made, 2 on bad settings.
    """
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        settings = Settings()
    except ValidationError as exc:
        logger.error("invalid settings: %s", exc)
        return 2
    try:
        runtime = DockerEngine.from_env()
    except ContainerEngineError as exc:
        logger.error("%s", exc)
        return 1
    try:
        _build(args, settings, runtime, lambda r: _emit(r, as_json=args.json))
    except (ImageError, ContainerEngineError) as exc:
        logger.error("%s", exc)
        return 1
    finally:
        runtime.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

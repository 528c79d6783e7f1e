"""The one content-key scheme: what names an image, and the hashes that go into it.

Every built image is addressed by ``content_key(payload)``: the sha256 of the
payload as canonical JSON (sorted keys, no spaces). The payload holds everything that
decides the image and nothing else:

* a backend (or the controller's) image: ``LAYOUT_VERSION``, the kind, the CPython
  minor, the base image id, the sha256 of its Dockerfile and ``.dockerignore``, the
  locked requirement lines, the source-tree hash of each workspace member it installs
  (``source_tree_hash``), the installer and the extra labels (the controller adds the
  hash of the sources it carries);
* a servers image: ``ENVIRONMENT_LAYOUT``, the base image id, the three backend image
  ids, the sha256 of its Dockerfile and the extra labels;
* an environment image: ``ENVIRONMENT_LAYOUT``, the base, backend and servers image
  ids, the lock's digest, the extra labels and the SDK's hash (admin images).

The key is the image's ``io.beephost.build.key`` label, and its first 16 hex digits
are the tag: ``<repository>:<X.Y>-<key[:16]>`` (``image_tag``), which every build tool
and test relies on. Environment images are tagged by their address of base, lock and
code (``environment_tag``), known before anything is built, so that an equal
environment finds its image without building the images under it. Base images are not built from
hashed inputs but imported or pulled: ``<repository>:<X.Y>``, current when their
labels name the configured source (Debian suite or registry digest).
"""

import hashlib
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path

from beephost_controller.images.errors import BackendImageError

#: Bumped when the wheelhouse layout or the way images are assembled changes: every
#: backend key (and so every tag) changes with it.
LAYOUT_VERSION = "1"
#: Bumped when servers and environment images change shape (2: a servers image, and
#: one committed layer).
ENVIRONMENT_LAYOUT = "2"

_MINOR_RE = re.compile(r"^3\.(\d{1,2})$")
_SOURCE_EXCLUDED_DIRS = frozenset({"__pycache__", ".mypy_cache", ".pytest_cache"})
SOURCE_EXCLUDED_SUFFIXES = (".pyc", ".pyo")


def content_key(payload: Mapping[str, object]) -> str:
    """The hex sha256 that names an image: equal payloads give equal keys."""
    encoded = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(encoded.encode()).hexdigest()


def image_tag(repository: str, python_minor: str, key: str) -> str:
    """The content-addressed tag: ``<repository>:<X.Y>-<first 16 hex of key>``."""
    return f"{repository}:{python_minor}-{key[:16]}"


def environment_code(servers: str, *, admin: bool, sdk: str | None = None) -> str:
    """The code an environment image carries, for its address.

    The servers' code; an admin image adds the client SDK, so its address changes
    with the SDK's source when its hash ``sdk`` is known, and differs from a plain
    image's anyway.
    """
    if not admin:
        return servers
    return f"{servers}+sdk" + (f".{sdk}" if sdk else "")


def environment_tag(
    repository: str, base_image_id: str, lock_digest: str, code: str
) -> str:
    """An environment image's address: equal base, lock and code give one image."""
    digest = hashlib.sha256(f"{base_image_id}\n{lock_digest}\n{code}".encode())
    return f"{repository}:{digest.hexdigest()[:24]}"


def alias_tag(repository: str, python_minor: str) -> str:
    """The moving tag of the newest build: ``<repository>:<X.Y>``."""
    return f"{repository}:{python_minor}"


def python_minor_of(version: str) -> str:
    """``"3.11.2"`` → ``"3.11"``.

    Raises:
        BackendImageError: Not a CPython 3 version.
    """
    minor = ".".join(version.split(".")[:2])
    if not _MINOR_RE.match(minor):
        raise BackendImageError(f"not a CPython version: {version!r}")
    return minor


def code_version(members: Mapping[str, str]) -> str:
    """One short hash over our packages' source-tree hashes."""
    payload = json.dumps(dict(sorted(members.items())), sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def source_tree_hash(member: Path) -> str:
    """Hash of what goes into a member's wheel: ``pyproject.toml``, READMEs, ``src/``.

    Byte caches and tool caches are ignored, so running the code does not change it.

    Raises:
        BackendImageError: ``member`` has no ``pyproject.toml``.
    """
    if not (member / "pyproject.toml").is_file():
        raise BackendImageError(f"{member} is not a package: no pyproject.toml")
    files = [member / "pyproject.toml", *sorted(member.glob("README*"))]
    for root, dirs, names in os.walk(member / "src"):
        dirs[:] = sorted(d for d in dirs if d not in _SOURCE_EXCLUDED_DIRS)
        files += [
            Path(root) / name
            for name in sorted(names)
            if not name.endswith(SOURCE_EXCLUDED_SUFFIXES)
        ]
    digest = hashlib.sha256()
    for path in files:
        if not path.is_file():
            continue
        digest.update(path.relative_to(member).as_posix().encode() + b"\0")
        digest.update(sha256_file(path).encode() + b"\n")
    return digest.hexdigest()

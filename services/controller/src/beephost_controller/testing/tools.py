"""In-memory image-building tools: a Debian rootfs builder and a wheelhouse (uv) driver."""

import hashlib
import io
import tarfile
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path

from beephost_controller.images.errors import BackendImageError, BaseImageError
from beephost_controller.images.keys import source_tree_hash
from beephost_controller.images.lockfile import parse_export
from beephost_controller.images.rootfs import RootfsPlan

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
            "usr/sbin/nft": b"\x7fELF fake\n",
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


def fake_sdist_bytes(name: str, version: str) -> bytes:
    """The source distribution ``FakeWheelhouseTools.wheel_from_source`` builds from."""
    return f"fake sdist {name} {version}\n".encode()


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

    def export(self, workspace: Path, package: str, *also: str) -> str:
        """A ``uv export`` text: core, protocol and the backend (and each of
        ``also``'s service), then hashed pins."""
        self.exports.append(package)
        lines = ["./packages/core", "./packages/protocol"]
        for name in (package, *also):
            service = name.removeprefix("beephost-")
            lines.append(f"./services/{'mcp-server' if service == 'mcp' else service}")
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

    def wheel_from_source(self, line: str, outdir: Path) -> Path:
        """Check ``line``'s hash against ``fake_sdist_bytes`` and write a pure wheel
        (``SourceWheelTool``).

        Raises:
            BackendImageError: The hash is not the fake sdist's.
        """
        (requirement,) = parse_export(line).requirements
        data = fake_sdist_bytes(requirement.name, requirement.version)
        if f"sha256:{hashlib.sha256(data).hexdigest()}" not in requirement.hashes:
            raise BackendImageError(f"hash mismatch for {requirement.name}'s sdist")
        self.built.append(f"sdist:{requirement.name}")
        outdir.mkdir(parents=True, exist_ok=True)
        name = requirement.name.replace("-", "_")
        wheel = outdir / f"{name}-{requirement.version}-py3-none-any.whl"
        wheel.write_bytes(b"built from " + data)
        return wheel

    def installer(self) -> tuple[str, Path | None]:
        """The configured installer description and binary."""
        return self.installer_name, self.uv_binary

"""Base-image logic against FakeEngine and FakeRootfsBuilder: no engine, no mmdebstrap."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from beephost_controller.images.base import ensure_base_image
from beephost_controller.images.base_source import (
    OFFICIAL_SLIM_DIGESTS,
    base_image_tag,
    debian_labels,
    import_changes,
    is_current,
    python_minor,
    registry_reference,
    select_source,
)
from beephost_controller.images.errors import BaseImageError
from beephost_controller.images.keys import sha256_file
from beephost_controller.images.labels import (
    LABEL_BASE_DIGEST,
    LABEL_DEBIAN_SUITE,
    LABEL_KIND,
    LABEL_MANAGED,
    LABEL_PYTHON_VERSION,
    LABEL_ROOTFS_PACKAGES,
    LABEL_ROOTFS_SHA256,
    LABEL_SOURCE,
)
from beephost_controller.images.rootfs import (
    DEBIAN_SUITES,
    MERGED_USR_HOOK,
    debian_suite,
    extract_hook_script,
    mmdebstrap_command,
    parse_dpkg_status,
    python_version_from_status,
    rootfs_plan,
    upstream_version,
)
from beephost_controller.ports import ImageInfo
from beephost_controller.settings import Settings
from beephost_controller.testing import FakeEngine, FakeRootfsBuilder, RemoteImage

DIGEST = "sha256:" + "ab" * 32
OTHER_DIGEST = "sha256:" + "cd" * 32
REGISTRY = "127.0.0.1:5000"
STATUS = """\
Package: dash
Status: install ok unpacked
Version: 0.5.12-2

Package: python3.11-minimal
Status: install ok unpacked
Architecture: amd64
Version: 3.11.2-6+deb12u6
Description: Minimal subset of the Python language (version 3.11)
 This package contains the interpreter and some essential modules.
 .
 More text.
"""


def make_settings(tmp_path: Path, **overrides: object) -> Settings:
    # Every field explicit: a BEEPHOST_CONTROLLER_* variable on the machine must not leak in.
    values: dict[str, object] = {
        "base_image_repository": "beephost-test/python",
        "base_image_registry": "",
        "base_image_digests": {},
        "rootfs_cache_dir": tmp_path / "rootfs",
        "debian_mirror": "http://deb.debian.org/debian",
    }
    values.update(overrides)
    return Settings.model_validate(values)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
def builder() -> FakeRootfsBuilder:
    return FakeRootfsBuilder()


# -- suite table and versions ----------------------------------------------------------


@pytest.mark.parametrize(
    ("minor", "suite"), [("3.11", "bookworm"), ("3.13", "trixie"), ("3.14", "sid")]
)
def test_debian_suite_table(minor: str, suite: str) -> None:
    assert debian_suite(minor) == suite
    assert DEBIAN_SUITES[minor] == suite


def test_no_debian_suite_ships_3_12() -> None:
    with pytest.raises(BaseImageError, match="BASE_IMAGE_REGISTRY"):
        debian_suite("3.12")


@pytest.mark.parametrize("bad", ["3", "3.11.2", "python3.11", "2.7", "3.11 ", ""])
def test_python_minor_rejects_anything_but_x_y(bad: str) -> None:
    with pytest.raises(BaseImageError):
        python_minor(bad)


@pytest.mark.parametrize(
    ("debian", "upstream"),
    [
        ("3.11.2-6+deb12u6", "3.11.2"),
        ("3.13.5-2", "3.13.5"),
        ("3.14.0~rc3-1", "3.14.0rc3"),
        ("3.14.2-1+b1", "3.14.2"),
        ("1:3.11.4-1", "3.11.4"),
        ("3.12.1+dfsg-1", "3.12.1"),
    ],
)
def test_upstream_version(debian: str, upstream: str) -> None:
    assert upstream_version(debian) == upstream


@pytest.mark.parametrize("bad", ["abc-1", "3.11-1", ""])
def test_upstream_version_rejects_non_cpython(bad: str) -> None:
    with pytest.raises(BaseImageError):
        upstream_version(bad)


def test_parse_dpkg_status_keeps_continuations() -> None:
    packages = parse_dpkg_status(STATUS)
    assert set(packages) == {"dash", "python3.11-minimal"}
    python = packages["python3.11-minimal"]
    assert python["Version"] == "3.11.2-6+deb12u6"
    assert python["Status"] == "install ok unpacked"
    assert python["Description"].splitlines()[1].startswith("This package")


def test_python_version_from_status() -> None:
    assert python_version_from_status(STATUS, "3.11") == ("3.11.2", "3.11.2-6+deb12u6")


def test_python_version_from_status_missing_package() -> None:
    with pytest.raises(BaseImageError, match=r"python3\.13-minimal is not"):
        python_version_from_status(STATUS, "3.13")


def test_python_version_from_status_refuses_removed_package() -> None:
    removed = STATUS.replace(
        "install ok unpacked\nArch", "deinstall ok config-files\nArch"
    )
    with pytest.raises(BaseImageError, match="not unpacked"):
        python_version_from_status(removed, "3.11")


# -- mmdebstrap ------------------------------------------------------------------------


def test_mmdebstrap_command_bookworm(tmp_path: Path) -> None:
    plan = rootfs_plan("3.11", "http://deb.debian.org/debian")
    command = mmdebstrap_command(plan, tmp_path / "out.tar.gz", tmp_path / "hook")
    assert command[:3] == [
        "mmdebstrap",
        "--variant=extract",
        "--include=python3.11-venv,dash,libstdc++6,libgcc-s1,ca-certificates,coreutils,"
        "nftables",
    ]
    assert command[-3:] == [
        "bookworm",
        str(tmp_path / "out.tar.gz"),
        "http://deb.debian.org/debian",
    ]
    assert f"--extract-hook={tmp_path / 'hook'}" in command
    assert not any(arg.startswith(("--setup-hook", "--aptopt")) for arg in command)


def test_mmdebstrap_command_trixie_merges_usr(tmp_path: Path) -> None:
    plan = rootfs_plan("3.13", "http://mirror.example/debian")
    command = mmdebstrap_command(plan, tmp_path / "o.tar.gz", tmp_path / "hook")
    assert f"--setup-hook={MERGED_USR_HOOK}" in command
    assert (
        "--include=python3.13-venv,dash,libstdc++6,libgcc-s1,ca-certificates,coreutils,"
        "nftables" in (command)
    )
    assert not any(arg.startswith("--aptopt") for arg in command)
    assert command[-3] == "trixie"


def test_mmdebstrap_command_sid_ignores_valid_until(tmp_path: Path) -> None:
    plan = rootfs_plan("3.14", "http://deb.debian.org/debian")
    command = mmdebstrap_command(plan, tmp_path / "o.tar.gz", tmp_path / "hook")
    assert f"--setup-hook={MERGED_USR_HOOK}" in command
    assert '--aptopt=Acquire::Check-Valid-Until "false"' in command
    assert command[-3] == "sid"


def test_extract_hook_finishes_what_postinst_would() -> None:
    script = extract_hook_script("3.13")
    assert script.startswith("#!/bin/sh\n")
    assert "ln -s python3.13 " in script
    assert "Status: install ok unpacked" in script
    assert "/etc/ssl/certs/ca-certificates.crt" in script
    assert "@PYTHON@" not in script
    assert 'rm -f "$root/etc/resolv.conf" "$root/etc/hostname"' in script


# -- tags, labels, source decision --------------------------------------------------------


def test_tag_and_labels() -> None:
    assert base_image_tag("beephost/python", "3.13") == "beephost/python:3.13"
    labels = debian_labels(
        minor="3.11",
        python_version="3.11.2",
        package_version="3.11.2-6+deb12u6",
        suite="bookworm",
        rootfs_sha256="0" * 64,
        packages_key="0123456789ab",
        extra={"io.beephost.test.run": "x"},
    )
    assert labels[LABEL_MANAGED] == "true"
    assert labels[LABEL_KIND] == "base-image"
    assert labels[LABEL_PYTHON_VERSION] == "3.11.2"
    assert labels[LABEL_ROOTFS_SHA256] == "0" * 64
    assert labels[LABEL_DEBIAN_SUITE] == "bookworm"
    assert labels["io.beephost.test.run"] == "x"


def test_import_changes_quote_labels_and_set_path() -> None:
    changes = import_changes(
        {"io.beephost.python.version": "3.11.2", "a.b": 'say "hi"'}
    )
    assert 'LABEL io.beephost.python.version="3.11.2"' in changes
    assert 'LABEL a.b="say \\"hi\\""' in changes
    assert any(
        change.startswith("ENV PATH=") and "/usr/bin" in change for change in changes
    )
    assert changes[-1] == 'CMD ["python3"]'


def test_source_is_debian_unless_a_registry_is_set(tmp_path: Path) -> None:
    assert select_source(make_settings(tmp_path)) == "debian"
    assert (
        select_source(make_settings(tmp_path, base_image_registry=REGISTRY))
        == "registry"
    )


def test_registry_reference_prefers_the_setting_over_the_table(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, base_image_registry=REGISTRY, base_image_digests={"3.11": DIGEST}
    )
    reference = registry_reference(settings, "3.11")
    assert reference.pull_ref == f"{REGISTRY}/python@{DIGEST}"
    assert reference.display == f"{REGISTRY}/python:3.11-slim@{DIGEST}"
    assert registry_reference(settings, "3.13").digest == OFFICIAL_SLIM_DIGESTS["3.13"]


def test_registry_mode_requires_a_digest(tmp_path: Path, engine: FakeEngine) -> None:
    settings = make_settings(tmp_path, base_image_registry="docker.io/library")
    with pytest.raises(BaseImageError, match=r"no digest pinned for python:3\.12-slim"):
        ensure_base_image("3.12", settings, runtime=engine)
    assert engine.operations == []


@pytest.mark.parametrize(
    "overrides",
    [
        {"base_image_digests": {"3.11": "latest"}},
        {"base_image_digests": {"3.11": "sha256:abc"}},
        {"base_image_digests": {"three": DIGEST}},
        {"base_image_repository": "Beephost/Python"},
        {"base_image_registry": "https://registry.example"},
        {"base_image_registry": "docker.io/library/python:3.11"},
        {"debian_mirror": "deb.debian.org/debian"},
    ],
)
def test_settings_refuse_unsafe_values(
    tmp_path: Path, overrides: dict[str, object]
) -> None:
    with pytest.raises(ValidationError):
        make_settings(tmp_path, **overrides)


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BEEPHOST_CONTROLLER_BASE_IMAGE_REGISTRY", "127.0.0.1:5000/")
    monkeypatch.setenv(
        "BEEPHOST_CONTROLLER_BASE_IMAGE_DIGESTS", f'{{"3.11": "{DIGEST}"}}'
    )
    settings = Settings()
    assert settings.base_image_registry == "127.0.0.1:5000"
    assert settings.base_image_digests == {"3.11": DIGEST}


# -- ensure_base_image, Debian path --------------------------------------------------------


def test_first_call_builds_and_labels(
    settings: Settings, engine: FakeEngine, builder: FakeRootfsBuilder
) -> None:
    image = ensure_base_image("3.11", settings, runtime=engine, builder=builder)
    assert image.built is True
    assert image.source == "debian"
    assert image.tag == "beephost-test/python:3.11"
    assert image.python_version == "3.11.2"
    assert image.debian_suite == "bookworm"
    plan = rootfs_plan("3.11", settings.debian_mirror)
    assert image.rootfs_path == (
        settings.rootfs_cache_dir / f"python3.11-bookworm-{plan.packages_key}.tar.gz"
    )
    assert image.rootfs_sha256 == sha256_file(image.rootfs_path)
    assert [plan.suite for plan in builder.builds] == ["bookworm"]
    info = engine.get_image(image.tag)
    assert info is not None
    assert info.id == image.image_id
    assert info.labels[LABEL_ROOTFS_SHA256] == image.rootfs_sha256
    assert info.labels[LABEL_SOURCE] == "debian"
    assert [op for op, _ in engine.operations] == ["import", "run"]


def test_cache_hit_does_no_work(
    settings: Settings, engine: FakeEngine, builder: FakeRootfsBuilder
) -> None:
    first = ensure_base_image("3.13", settings, runtime=engine, builder=builder)
    operations = list(engine.operations)
    second = ensure_base_image("3.13", settings, runtime=engine, builder=builder)
    assert second.built is False
    assert second.image_id == first.image_id
    assert second.python_version == "3.13.5"
    assert second.rootfs_sha256 == first.rootfs_sha256
    assert engine.operations == operations
    assert len(builder.builds) == 1


def test_cached_rootfs_is_reimported_without_rebuilding(
    settings: Settings, engine: FakeEngine, builder: FakeRootfsBuilder
) -> None:
    first = ensure_base_image("3.11", settings, runtime=engine, builder=builder)
    engine.remove_image(first.tag)
    again = ensure_base_image("3.11", settings, runtime=engine, builder=builder)
    assert again.built is True
    assert again.rootfs_sha256 == first.rootfs_sha256
    assert len(builder.builds) == 1


def test_an_image_of_another_package_list_is_stale(
    settings: Settings, engine: FakeEngine, builder: FakeRootfsBuilder
) -> None:
    """A base image from before a package joined the list (nftables) lacks it: it
    is stale, and the new list's rootfs is another cached tarball."""
    image = ensure_base_image("3.11", settings, runtime=engine, builder=builder)
    info = engine.get_image(image.tag)
    assert info is not None
    plan = rootfs_plan("3.11", settings.debian_mirror)
    assert info.labels[LABEL_ROOTFS_PACKAGES] == plan.packages_key
    assert is_current(
        info, source="debian", suite="bookworm", packages_key=plan.packages_key
    )
    older = ImageInfo(
        id=info.id, tags=(), labels={**info.labels, LABEL_ROOTFS_PACKAGES: "0" * 12}
    )
    assert not is_current(
        older, source="debian", suite="bookworm", packages_key=plan.packages_key
    )
    assert "nftables" in plan.packages


def test_refresh_rebuilds_and_retires_the_old_image(
    settings: Settings, engine: FakeEngine, builder: FakeRootfsBuilder
) -> None:
    first = ensure_base_image("3.11", settings, runtime=engine, builder=builder)
    builder.versions["3.11"] = "3.11.2-6+deb12u7"
    second = ensure_base_image(
        "3.11", settings, runtime=engine, builder=builder, refresh=True
    )
    assert second.built is True
    assert second.image_id != first.image_id
    assert len(builder.builds) == 2
    assert engine.get_image(first.image_id) is None


@pytest.mark.parametrize(
    ("omit", "interpreter", "refusal"),
    [
        pytest.param(
            frozenset({"etc/ssl/certs/ca-certificates.crt"}),
            None,
            r"ca-certificates\.crt",
            id="rootfs-without-ca-bundle",
        ),
        pytest.param(
            frozenset(),
            "3.11.9",
            r"dpkg says CPython 3\.11\.2",
            id="interpreter-disagreeing-with-dpkg",
        ),
    ],
)
def test_a_broken_base_image_is_refused_and_not_kept(
    settings: Settings,
    engine: FakeEngine,
    omit: frozenset[str],
    interpreter: str | None,
    refusal: str,
) -> None:
    builder = FakeRootfsBuilder(omit=omit)
    if interpreter is not None:
        engine.python_versions["beephost-test/python:3.11"] = interpreter
    with pytest.raises(BaseImageError, match=refusal):
        ensure_base_image("3.11", settings, runtime=engine, builder=builder)
    assert engine.get_image("beephost-test/python:3.11") is None


def test_invalid_extra_label_key(
    settings: Settings, engine: FakeEngine, builder: FakeRootfsBuilder
) -> None:
    with pytest.raises(BaseImageError, match="invalid label key"):
        ensure_base_image(
            "3.11",
            settings,
            runtime=engine,
            builder=builder,
            extra_labels={"A B": "x"},
        )


def test_remove_by_labels_removes_only_matching(
    settings: Settings, engine: FakeEngine, builder: FakeRootfsBuilder
) -> None:
    ours = ensure_base_image(
        "3.11", settings, runtime=engine, builder=builder, extra_labels={"t.run": "1"}
    )
    theirs = ensure_base_image("3.13", settings, runtime=engine, builder=builder)
    assert engine.remove_by_labels({"t.run": "1"}) == [ours.image_id]
    assert engine.get_image(theirs.tag) is not None
    with pytest.raises(ValueError, match="empty"):
        engine.remove_by_labels({})


# -- ensure_base_image, registry path ---------------------------------------------------


def registry_settings(tmp_path: Path, digest: str = DIGEST) -> Settings:
    return make_settings(
        tmp_path, base_image_registry=REGISTRY, base_image_digests={"3.11": digest}
    )


def test_registry_pull_by_digest_and_relabel(tmp_path: Path) -> None:
    engine = FakeEngine({f"{REGISTRY}/python@{DIGEST}": RemoteImage("3.11.14")})
    settings = registry_settings(tmp_path)
    image = ensure_base_image("3.11", settings, runtime=engine)
    assert image.source == "registry"
    assert image.built is True
    assert image.python_version == "3.11.14"
    assert image.digest == DIGEST
    assert image.rootfs_sha256 is None
    info = engine.get_image(image.tag)
    assert info is not None
    assert info.labels[LABEL_BASE_DIGEST] == DIGEST
    assert info.labels[LABEL_PYTHON_VERSION] == "3.11.14"
    # Our pull reference is gone; the pulled layers live on as the parent.
    assert engine.get_image(f"{REGISTRY}/python@{DIGEST}") is None
    operations = list(engine.operations)
    assert ensure_base_image("3.11", settings, runtime=engine).built is False
    assert engine.operations == operations


def test_registry_digest_change_repulls(tmp_path: Path) -> None:
    engine = FakeEngine(
        {
            f"{REGISTRY}/python@{DIGEST}": RemoteImage("3.11.14"),
            f"{REGISTRY}/python@{OTHER_DIGEST}": RemoteImage("3.11.15"),
        }
    )
    first = ensure_base_image("3.11", registry_settings(tmp_path), runtime=engine)
    second = ensure_base_image(
        "3.11", registry_settings(tmp_path, OTHER_DIGEST), runtime=engine
    )
    assert second.built is True
    assert second.python_version == "3.11.15"
    assert engine.get_image(first.image_id) is None


def test_switching_from_debian_to_registry_replaces_the_image(
    tmp_path: Path, builder: FakeRootfsBuilder
) -> None:
    engine = FakeEngine({f"{REGISTRY}/python@{DIGEST}": RemoteImage("3.11.14")})
    debian = ensure_base_image(
        "3.11", make_settings(tmp_path), runtime=engine, builder=builder
    )
    pulled = ensure_base_image("3.11", registry_settings(tmp_path), runtime=engine)
    assert pulled.source == "registry"
    assert pulled.built is True
    assert pulled.tag == debian.tag
    assert engine.get_image(debian.image_id) is None


def test_registry_image_of_another_minor_is_refused(tmp_path: Path) -> None:
    engine = FakeEngine({f"{REGISTRY}/python@{DIGEST}": RemoteImage("3.10.4")})
    with pytest.raises(BaseImageError, match=r"runs CPython '3\.10\.4', not 3\.11\.x"):
        ensure_base_image("3.11", registry_settings(tmp_path), runtime=engine)
    assert engine.get_image("beephost-test/python:3.11") is None
    assert engine.get_image(f"{REGISTRY}/python@{DIGEST}") is None


def test_registry_missing_manifest(tmp_path: Path) -> None:
    engine = FakeEngine()
    with pytest.raises(BaseImageError, match="cannot pull"):
        ensure_base_image("3.11", registry_settings(tmp_path), runtime=engine)

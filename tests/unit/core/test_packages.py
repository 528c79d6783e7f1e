"""Activating a staged install (beephost_core.packages) on a real directory tree."""

import json
from pathlib import Path

import pytest

from beephost_core import packages


def stage(root: Path, name: str, files: dict[str, str]) -> str:
    staged = f".staging-{name}"
    for relative, text in files.items():
        path = root / staged / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return staged


def dist(name: str, version: str) -> dict[str, str]:
    return {
        f"{name}-{version}.dist-info/METADATA": (
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        )
    }


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "site").mkdir()
    return tmp_path


def test_a_staged_install_moves_in_and_is_listed(root: Path) -> None:
    staged = stage(
        root, "a", {"tabulate/__init__.py": "x = 1\n", **dist("tabulate", "0.9.0")}
    )
    result = packages.activate(root, staged)
    assert result == [{"name": "tabulate", "version": "0.9.0"}]
    assert (root / "site" / "tabulate" / "__init__.py").read_text() == "x = 1\n"
    assert not (root / staged).exists()
    assert packages.installed(root / "site") == result


def test_namespace_directories_merge(root: Path) -> None:
    first = stage(
        root, "a", {"google/auth/__init__.py": "", **dist("google-auth", "2.0")}
    )
    packages.activate(root, first)
    second = stage(
        root, "b", {"google/protobuf/__init__.py": "", **dist("protobuf", "5.0")}
    )
    result = packages.activate(root, second)
    assert {d["name"] for d in result} == {"google-auth", "protobuf"}
    assert sorted(p.name for p in (root / "site" / "google").iterdir()) == [
        "auth",
        "protobuf",
    ]


def test_a_clash_moves_nothing(root: Path) -> None:
    packages.activate(
        root, stage(root, "a", {"six.py": "old\n", **dist("six", "1.16.0")})
    )
    before = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    staged = stage(
        root, "b", {"six.py": "new\n", "other/__init__.py": "", **dist("other", "1")}
    )
    with pytest.raises(packages.PackagesRefused, match=r"already installed: six\.py"):
        packages.activate(root, staged)
    assert (root / "site" / "six.py").read_text() == "old\n"
    assert not (root / "site" / "other").exists()
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*")) == before


@pytest.mark.parametrize("staged", ["site", "..", ".staging-x/../site", "/tmp"])
def test_only_a_staging_directory_is_activated(root: Path, staged: str) -> None:
    with pytest.raises(packages.PackagesRefused):
        packages.activate(root, staged)
    assert (root / "site").is_dir()


def test_discard_removes_the_staging_only(root: Path) -> None:
    packages.activate(root, stage(root, "a", dist("six", "1.16.0")))
    staged = stage(root, "b", {"half.py": ""})
    packages.discard(root, staged)
    assert not (root / staged).exists()
    assert packages.installed(root / "site")[0]["name"] == "six"
    with pytest.raises(packages.PackagesRefused):
        packages.discard(root, "site")


def test_main_prints_one_json_object(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    staged = stage(root, "a", dist("tabulate", "0.9.0"))
    assert packages.main(["activate", str(root), staged]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "installed": [{"name": "tabulate", "version": "0.9.0"}]
    }
    assert packages.main(["list", str(root / "site")]) == 0
    assert json.loads(capsys.readouterr().out)["installed"][0]["name"] == "tabulate"
    assert packages.main(["activate", str(root), ".staging-missing"]) == 1
    assert "nothing staged" in json.loads(capsys.readouterr().out)["error"]
    assert packages.main(["frobnicate"]) == 1
    assert "usage" in json.loads(capsys.readouterr().out)["error"]

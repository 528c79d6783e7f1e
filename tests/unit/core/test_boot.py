"""beephost_core.boot: a distribution's version without importlib.metadata, and
pydantic without its plugin search."""

import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest

from beephost_core.boot import distribution_version


@pytest.mark.parametrize(
    "name",
    ["beephost-core", "beephost-pipe-backend", "pydantic", "pydantic-core", "grpcio"],
)
def test_the_version_is_the_one_importlib_metadata_reads(name: str) -> None:
    assert distribution_version(name) == importlib.metadata.version(name)


def test_the_name_is_matched_whole_and_normalized(tmp_path: Path) -> None:
    (tmp_path / "foo_bar-1.2.3.dist-info").mkdir()
    (tmp_path / "foo_bar_baz-9.0.dist-info").mkdir()
    assert distribution_version("Foo.Bar", [str(tmp_path)]) == "1.2.3"
    assert distribution_version("foo-bar-baz", [str(tmp_path)]) == "9.0"
    with pytest.raises(LookupError, match="'foo'"):
        distribution_version("foo", [str(tmp_path), str(tmp_path / "missing")])


def test_pydantic_builds_and_validates_models_without_plugins() -> None:
    code = (
        "import sys; from beephost_core.boot import without_pydantic_plugins; "
        "without_pydantic_plugins(); import pydantic\n"
        "class M(pydantic.BaseModel):\n    x: int\n"
        "assert M.model_validate({'x': '3'}).x == 3\n"
        "try:\n    M(x='three')\nexcept pydantic.ValidationError as e:\n"
        "    assert e.errors()[0]['loc'] == ('x',)\nelse:\n    raise SystemExit(1)\n"
        "assert 'importlib.metadata' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)

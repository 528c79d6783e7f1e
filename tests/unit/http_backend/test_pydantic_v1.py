"""The server forgoes pydantic.v1, which FastAPI imports only to ask about v1 models."""

import importlib
import sys

import pydantic
import pytest

from beephost_http_backend import Settings, create_app
from beephost_http_backend.server import forgo_pydantic_v1


@pytest.fixture
def without_v1(monkeypatch: pytest.MonkeyPatch) -> None:
    # As in a fresh server process; this one imported it (monkeypatch puts it back).
    monkeypatch.delitem(sys.modules, "pydantic.v1", raising=False)
    monkeypatch.delattr(pydantic, "v1", raising=False)


@pytest.mark.usefixtures("without_v1")
def test_forgone_v1_cannot_be_imported_and_the_app_still_builds() -> None:
    forgo_pydantic_v1()
    with pytest.raises(ImportError):
        importlib.import_module("pydantic.v1")
    assert "/api/sessions" in create_app(Settings()).openapi()["paths"]
    assert sys.modules["pydantic.v1"] is None  # FastAPI did without it


def test_an_imported_v1_is_left_alone() -> None:
    v1 = importlib.import_module("pydantic.v1")
    forgo_pydantic_v1()
    assert sys.modules["pydantic.v1"] is v1

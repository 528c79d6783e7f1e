"""EnvSettings: fields from <env_prefix><NAME> variables, as pydantic-settings reads them."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_core import ErrorDetails

from beephost_core.envsettings import EnvConfigDict, EnvSettings
from beephost_core.settings import BackendSettings
from beephost_pipe_backend.settings import Settings as PipeSettings


class Point(BaseModel):
    x: int
    y: int


class Demo(EnvSettings):
    model_config = EnvConfigDict(env_prefix="DEMO_")

    name: str = "default"
    port: int = Field(80, ge=1, le=65535)
    path: Path | None = None
    flag: bool = False
    secret: SecretStr | None = None
    env: dict[str, str] = Field(default_factory=dict)
    items: list[int] = Field(default_factory=list)
    pair: tuple[int, str] = (0, "")
    tags: set[str] = Field(default_factory=set)
    point: Point | None = None
    names: list[str] | str = ""
    shout: str = "quiet"

    @field_validator("shout")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()


def _refused(build: Callable[[], object]) -> tuple[ErrorDetails, ValidationError]:
    """Building the settings fails with exactly one error: it, and the exception."""
    with pytest.raises(ValidationError) as caught:
        build()
    [error] = caught.value.errors()
    return error, caught.value


def test_defaults_when_nothing_is_set() -> None:
    demo = Demo()
    assert (demo.name, demo.port, demo.env, demo.point) == ("default", 80, {}, None)
    assert demo.shout == "QUIET"  # defaults are validated too, as in pydantic-settings


def test_reads_prefixed_upper_case_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_NAME", "from-env")
    monkeypatch.setenv("DEMO_PORT", "8080")
    monkeypatch.setenv("DEMO_PATH", "/srv/x")
    monkeypatch.setenv("DEMO_FLAG", "yes")
    monkeypatch.setenv("DEMO_SHOUT", "hi")  # validators run on what was read
    monkeypatch.setenv("NAME", "unprefixed")  # not this class's variable
    demo = Demo()
    assert (demo.name, demo.port, demo.path) == ("from-env", 8080, Path("/srv/x"))
    assert demo.flag is True
    assert demo.shout == "HI"


def test_names_are_case_insensitive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("demo_name", "lower")
    monkeypatch.setenv("Demo_Port", "81")
    demo = Demo()
    assert (demo.name, demo.port) == ("lower", 81)


def test_without_a_prefix_the_bare_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "bare")
    assert BackendSettings().environment == "bare"
    assert PipeSettings().environment == "local"  # a subclass's prefix replaces it


def test_keyword_arguments_win_over_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DEMO_NAME", "from-env")
    monkeypatch.setenv("DEMO_ENV", '{"A": "1"}')
    monkeypatch.setenv("DEMO_PORT", "not a number")  # never read: given below
    demo = Demo(name="given", env={"B": "2"}, port=9)
    assert (demo.name, demo.env, demo.port) == ("given", {"B": "2"}, 9)


def test_complex_fields_are_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_ENV", '{"TZ": "UTC"}')
    monkeypatch.setenv("DEMO_ITEMS", "[1, 2]")
    monkeypatch.setenv("DEMO_PAIR", '[3, "c"]')
    monkeypatch.setenv("DEMO_TAGS", '["a", "a"]')
    monkeypatch.setenv("DEMO_POINT", '{"x": 1, "y": 2}')
    demo = Demo()
    assert demo.env == {"TZ": "UTC"}
    assert demo.items == [1, 2]
    assert demo.pair == (3, "c")
    assert demo.tags == {"a"}
    assert demo.point == Point(x=1, y=2)


def test_a_union_with_a_plain_member_keeps_text_that_is_not_json(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DEMO_NAMES", "plain")
    assert Demo().names == "plain"
    monkeypatch.setenv("DEMO_NAMES", '["a", "b"]')
    assert Demo().names == ["a", "b"]
    monkeypatch.setenv("DEMO_POINT", "null")
    assert Demo().point is None


def test_secrets_are_read_and_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_SECRET", "s3cret")
    demo = Demo()
    assert demo.secret is not None
    assert demo.secret.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(demo)


def test_an_empty_variable_is_the_empty_string(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_NAME", "")
    monkeypatch.setenv("DEMO_SECRET", "")
    demo = Demo()
    assert demo.name == ""
    assert demo.secret is not None
    assert demo.secret.get_secret_value() == ""
    # Not "unset": an empty token is refused instead of meaning "no auth".
    monkeypatch.setenv("BEEPHOST_PIPE_BACKEND_TOKEN", "")
    with pytest.raises(ValidationError, match="the token is empty"):
        PipeSettings()


def test_unknown_variables_and_keywords_are_ignored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DEMO_UNKNOWN", "x")
    demo = Demo(unknown="y")  # type: ignore[call-arg]
    assert not hasattr(demo, "unknown")


@pytest.mark.parametrize(
    ("variable", "value", "kind"),
    [
        ("DEMO_PORT", "http", "int_parsing"),
        ("DEMO_PORT", "0", "greater_than_equal"),
        ("DEMO_PORT", "", "int_parsing"),
        ("demo_flag", "maybe", "bool_parsing"),
        ("DEMO_ENV", "TZ=UTC", "json_invalid"),
        ("DEMO_ITEMS", "", "json_invalid"),
    ],
)
def test_a_bad_value_names_its_variable(
    variable: str, value: str, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, value)
    error, refused = _refused(Demo)
    assert error["loc"] == (variable,)
    assert error["type"] == kind
    assert error["input"] == value
    assert str(refused).splitlines()[1] == variable


def test_a_nested_error_keeps_its_place_under_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DEMO_ENV", '{"A": 1}')
    monkeypatch.setenv("DEMO_PORT", "99999")
    with pytest.raises(ValidationError) as caught:
        Demo()
    assert {error["loc"] for error in caught.value.errors()} == {
        ("DEMO_ENV", "A"),
        ("DEMO_PORT",),
    }


def test_a_validators_message_survives_renaming(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BEEPHOST_PIPE_BACKEND_WORKER_ENV", '{"{odd}": "v"}')
    error, _ = _refused(PipeSettings)
    assert error["loc"] == ("BEEPHOST_PIPE_BACKEND_WORKER_ENV",)
    assert "not an environment variable name: '{odd}'" in error["msg"]


def test_a_bad_keyword_argument_is_pydantics_own_error() -> None:
    error, _ = _refused(lambda: Demo(port=0))
    assert error["loc"] == ("port",)
    assert error["url"].startswith("https://errors.pydantic.dev/")


def test_the_prefix_is_in_model_config() -> None:
    assert Demo.model_config["env_prefix"] == "DEMO_"
    assert PipeSettings.model_config["env_prefix"] == "BEEPHOST_PIPE_BACKEND_"
    assert "env_prefix" not in BackendSettings.model_config


@pytest.mark.parametrize("how", ["variable", "keyword"])
def test_a_refused_token_is_not_quoted(
    how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = "not a token"  # spaces: refused, and the error must not show it
    keywords: dict[str, Any] = {}
    if how == "variable":
        monkeypatch.setenv("BEEPHOST_PIPE_BACKEND_TOKEN", token)
    else:
        keywords["token"] = token
    error, refused = _refused(lambda: PipeSettings(**keywords))
    assert "printable ASCII" in error["msg"]
    assert token not in str(refused)
    assert error["input"] == "**********"


def test_a_worker_env_that_is_not_json_is_not_quoted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The controller hands admin backends its own token in worker_env.
    monkeypatch.setenv("BEEPHOST_PIPE_BACKEND_WORKER_ENV", '{"TOKEN": "t0ps3cret"')
    error, refused = _refused(PipeSettings)
    assert error["type"] == "json_invalid"
    assert error["loc"] == ("BEEPHOST_PIPE_BACKEND_WORKER_ENV",)
    assert "t0ps3cret" not in str(refused)

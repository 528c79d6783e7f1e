"""Settings read from environment variables: the part of pydantic-settings we use.

pydantic-settings (and python-dotenv, argparse, ...) cost each backend server 1.3 to
3 MiB of memory and 70 to 100 ms of import (issue 14: an idle backend should stay
small), for one feature. An :class:`EnvSettings` reads each field from
``<env_prefix><FIELD>`` as pydantic-settings does by default: names case-insensitive,
lists, dicts, tuples, sets and models as JSON, an empty variable as the empty string,
unknown names ignored. A keyword argument replaces its variable (pydantic-settings
merges a dict with the variable's; nothing relies on that). No .env files, secrets
directories, aliases or nested delimiters. A bad value's error names its variable, and
never shows a secret field's value (pydantic's errors quote their input: a token with a
space would reach the container's log).
"""

import json
import os
from collections import deque
from collections.abc import Mapping, Sequence, Set
from dataclasses import is_dataclass
from types import NoneType, UnionType
from typing import Annotated, Any, ClassVar, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Json, ValidationError
from pydantic.fields import FieldInfo
from pydantic.types import Secret, SecretBytes, SecretStr
from pydantic_core import ErrorDetails, InitErrorDetails, PydanticCustomError

# SecretStr and SecretBytes are no subclasses of Secret.
_SECRET_TYPES = (Secret, SecretStr, SecretBytes)


class EnvConfigDict(ConfigDict, total=False):
    """A model's config, with the prefix of its variables' names."""

    env_prefix: str


class EnvSettings(BaseModel):
    """A model whose fields default to environment variables ``<env_prefix><NAME>``."""

    # validate_default as pydantic-settings: a default goes through the validators too.
    model_config: ClassVar[EnvConfigDict] = EnvConfigDict(
        extra="ignore", validate_default=True
    )
    # Fields besides the secret-typed ones whose values errors must not quote.
    hidden_inputs: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, /, **values: Any) -> None:
        prefix = self.model_config.get("env_prefix", "")
        # Case-insensitive: the last of two spellings wins, as in pydantic-settings.
        environ = {name.lower(): (name, value) for name, value in os.environ.items()}
        variables: dict[str, str] = {}  # field -> the variable its value came from
        hidden = _secret_fields(type(self)) | self.hidden_inputs
        for name, field in type(self).model_fields.items():
            if (
                name in values
                or (found := environ.get(f"{prefix}{name}".lower())) is None
            ):
                continue
            variable, text = found
            values[name] = _decode(
                type(self).__name__, variable, text, field, hide=name in hidden
            )
            variables[name] = variable
        try:
            super().__init__(**values)
        except ValidationError as exc:
            if not any(
                _field(error) in variables or _field(error) in hidden
                for error in exc.errors()
            ):
                raise  # keyword arguments and defaults: pydantic's error as it is
            raise _retold(exc, variables, hidden) from None


def _decode(
    title: str, variable: str, text: str, field: FieldInfo, *, hide: bool
) -> Any:
    """The variable's value as the field's validator gets it: JSON for a complex type."""
    annotation, metadata = field.annotation, field.metadata
    members = [
        member
        for member in (get_args(annotation) if _is_union(annotation) else (annotation,))
        if member is not NoneType
    ]
    # A Json[...] field parses the text itself.
    if any(type(item) is Json for item in metadata) or not any(
        _is_complex(member) for member in members
    ):
        return text
    try:
        return json.loads(text)
    except ValueError as exc:
        if _is_union(annotation):
            return text  # `list[str] | str`: the text may be the other member's
        details = InitErrorDetails(
            type="json_invalid",
            loc=(variable,),
            input=_HIDDEN if hide else text,
            ctx={"error": str(exc)},
        )
        raise ValidationError.from_exception_data(title, [details]) from None


def _is_union(annotation: Any) -> bool:
    return get_origin(annotation) in (Union, UnionType)


def _is_complex(annotation: Any) -> bool:
    """pydantic-settings' rule: containers, models and dataclasses; not str or secrets."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _is_complex(get_args(annotation)[0])
    kind = origin or annotation
    if not isinstance(kind, type) or issubclass(kind, (str, bytes, *_SECRET_TYPES)):
        return False
    containers = (BaseModel, Mapping, Sequence, Set, tuple, deque)
    return issubclass(kind, containers) or is_dataclass(kind)


def _secret_fields(model: type[BaseModel]) -> frozenset[str]:
    """The fields whose type is a pydantic secret (``SecretStr``, ``SecretStr | None``)."""
    return frozenset(
        name
        for name, field in model.model_fields.items()
        if any(
            isinstance(member, type) and issubclass(member, _SECRET_TYPES)
            for member in (
                get_args(field.annotation)
                if _is_union(field.annotation)
                else (field.annotation,)
            )
        )
    )


def _field(error: ErrorDetails) -> str | None:
    loc = error["loc"]
    return loc[0] if loc and isinstance(loc[0], str) else None


_HIDDEN = "**********"  # what pydantic shows for a SecretStr


def _retold(
    exc: ValidationError, variables: Mapping[str, str], hidden: Set[str]
) -> ValidationError:
    """The same errors, each located at the variable its value came from, if any, with
    a hidden field's input hidden."""
    details: list[InitErrorDetails] = []
    for error in exc.errors():
        loc, field, given = error["loc"], _field(error), error["input"]
        if field is not None and field in variables:
            loc = (variables[field], *loc[1:])
        if field is not None and field in hidden:
            given = _HIDDEN
        # The message as rendered (a message without context is not formatted again):
        # the error's type may be a validator's own, which from_exception_data rejects.
        kind = PydanticCustomError(error["type"], error["msg"])
        details.append(InitErrorDetails(type=kind, loc=loc, input=given))
    return ValidationError.from_exception_data(exc.title, details)

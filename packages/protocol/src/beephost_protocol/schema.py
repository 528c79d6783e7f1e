"""JSON Schema (draft 2020-12) of the pipe protocol, generated from the pydantic models.

The committed output is ``beephost_protocol/schema/pipe-v1.schema.json``; regenerate it
with ``python -m beephost_protocol.schema`` and verify it with ``--check`` (exit 1 when
stale). ``docs/protocol/pipe.md`` is the prose spec; this schema is its machine-readable
twin, and the doc's examples are validated against it.

Layout of the schema:

- the root is ``oneOf`` request, response or event (every line on the wire is one);
- ``$defs/Request`` is ``oneOf`` one envelope per command, told apart by ``type``;
- ``$defs/<Command>Response`` is the reply to that command: its typed ``result`` or an
  error (a reply does not name its command, so the client picks the schema by the id);
- ``x-commands`` maps each wire ``type`` to its request and response definitions.
"""

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import (
    GenerateJsonSchema,
    JsonSchemaMode,
    JsonSchemaValue,
    models_json_schema,
)
from pydantic_core import core_schema

from beephost_protocol import files, models
from beephost_protocol.errors import ErrorCode

SCHEMA_PATH = Path(__file__).with_name("schema") / "pipe-v1.schema.json"
SCHEMA_ID = "urn:beephost:protocol:pipe:v1"
DRAFT = "https://json-schema.org/draft/2020-12/schema"


# -- transport-level messages ----------------------------------------------------------
# hello and ping are answered by the pipe server itself (beephost_pipe_backend/server.py
# builds these shapes by hand); the models live here until the server uses them.


class _Transport(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Hello(_Transport):
    """Authenticate (when the server has a token) and learn the protocol version."""

    COMMAND: ClassVar[str] = "hello"
    token: str | None = Field(
        None,
        description="The server's token; required when the server has one, "
        "ignored otherwise.",
    )


class Ping(_Transport):
    """Liveness and readiness; allowed before authentication."""

    COMMAND: ClassVar[str] = "ping"


class HelloResult(_Transport):
    """What the server is and the limits it enforces on this connection."""

    protocol: str = Field(
        description="Protocol version, MAJOR.MINOR.",
        pattern=r"^[0-9]+\.[0-9]+$",
        examples=[models.PROTOCOL_VERSION],
    )
    server: str = Field(description="Implementation name/version, informational.")
    environment: str = Field(description="Name of the Python environment served.")
    auth_required: bool = Field(description="Whether this server demands a token.")
    max_frame_bytes: int = Field(
        description="Longest request line accepted, in bytes, without the newline."
    )
    max_inflight: int = Field(
        description="Requests per connection run at once; further ones wait unread."
    )
    max_result_bytes: int = Field(
        description="Largest reply to a session command, in bytes; larger ones are "
        "answered with too_large."
    )


class PingResult(_Transport):
    """Liveness (``pong``) and readiness (``ready``: the default session can run code)."""

    pong: Literal[True]
    ready: bool


# -- the command table -----------------------------------------------------------------

TRANSPORT_COMMANDS: dict[str, type[BaseModel]] = {"hello": Hello, "ping": Ping}
"""Commands answered by the transport rather than the execution core."""

RESULTS: dict[str, type[BaseModel]] = {
    "hello": HelloResult,
    "ping": PingResult,
    "eval": models.ValueResult,
    "exec": models.ExecResult,
    "object.create": models.ValueResult,
    "object.get_attr": models.ValueResult,
    "object.set_attr": models.EmptyResult,
    "object.call": models.ValueResult,
    "object.release": models.ReleaseResult,
    "object.list": models.HandleList,
    "session.info": models.SessionDescription,
    "session.open": models.SessionOpened,
    "session.close": models.SessionClosed,
    "session.list": models.SessionListing,
    "interrupt": models.InterruptResult,
    **files.FILE_RESULTS,
}
"""The ``result`` model of each command's successful reply."""


def all_commands() -> dict[str, type[BaseModel]]:
    """Every wire ``type``: the transport's own commands, then the core's."""
    return {**TRANSPORT_COMMANDS, **models.COMMANDS}


# -- generation ------------------------------------------------------------------------

# Hand-written definitions: envelopes and the $-tagged value encoding.

# The value tags of this protocol version. The client codec (beephost_protocol.values)
# and the worker's decoder know exactly these; any other single "$" key is a plain dict.
VALUE_TAGS: dict[str, JsonSchemaValue] = {
    "$float": {"enum": ["nan", "inf", "-inf"]},
    "$bytes": {"type": "string", "contentEncoding": "base64"},
    "$tuple": {"type": "array", "items": {"$ref": "#/$defs/Value"}},
    "$map": {
        "type": "array",
        "items": {
            "type": "array",
            "prefixItems": [{"$ref": "#/$defs/Value"}, {"$ref": "#/$defs/Value"}],
            "minItems": 2,
            "maxItems": 2,
        },
    },
    "$dict": {"type": "object", "additionalProperties": {"$ref": "#/$defs/Value"}},
    "$handle": {"$ref": "#/$defs/HandleRef"},
    "$int": {"type": "string", "pattern": "^-?[0-9a-f]+$"},
    "$set": {"type": "array", "items": {"$ref": "#/$defs/Value"}},
    "$frozenset": {"type": "array", "items": {"$ref": "#/$defs/Value"}},
    "$complex": {
        "type": "array",
        "prefixItems": [{"$ref": "#/$defs/Value"}, {"$ref": "#/$defs/Value"}],
        "minItems": 2,
        "maxItems": 2,
    },
    "$decimal": {"type": "string"},
    "$datetime": {"type": "string"},
    "$date": {"type": "string", "format": "date"},
    "$time": {"type": "string"},
    "$timedelta": {
        "type": "array",
        "items": {"type": "integer"},
        "minItems": 3,
        "maxItems": 3,
    },
    "$uuid": {"type": "string", "format": "uuid"},
    "$path": {"type": "string"},
}
_TAG_DESCRIPTIONS = {
    "$float": "A non-finite float (strict JSON has no NaN or Infinity).",
    "$bytes": "bytes, base64-encoded (standard alphabet, padded).",
    "$tuple": "A tuple; JSON arrays decode as lists.",
    "$map": "A dict with a non-string key, as [key, value] pairs.",
    "$dict": "A dict whose only key starts with '$' (would look like a tag).",
    "$handle": "A reference to an object kept in the session. In arguments only "
    "'id' is read.",
    "$int": "An integer of 4000 decimal digits or more, in lowercase hex ('-1f'); "
    "smaller ones are JSON numbers.",
    "$set": "A set; its members are hashable values (no $handle, list or dict).",
    "$frozenset": "A frozenset; its members are hashable values.",
    "$complex": "A complex number, [real, imag]; each part a number or a $float.",
    "$decimal": "A decimal.Decimal, its exact text ('1.10', 'NaN', '-Infinity').",
    "$datetime": "A datetime.datetime in ISO 8601, with its UTC offset if aware "
    "('2024-05-17T12:00:00.5+02:00'); the zone becomes a fixed offset.",
    "$date": "A datetime.date in ISO 8601 ('2024-05-17').",
    "$time": "A datetime.time in ISO 8601, with a fixed UTC offset if it has one.",
    "$timedelta": "A datetime.timedelta as [days, seconds, microseconds], "
    "normalised as Python does (0 <= seconds < 86400, 0 <= microseconds < 10**6).",
    "$uuid": "A uuid.UUID, canonical lowercase text.",
    "$path": "A POSIX path (pathlib.PurePosixPath or Path), as text; it names a "
    "file on the server.",
}


# The rich outputs' shape (models.Output), inline: the value definitions stand alone.
_BUNDLE: JsonSchemaValue = {
    "type": "object",
    "description": "Only on the handle that is a reply's own value (never on handles "
    "inside it), when the object has a representation beyond text/plain "
    "(_repr_html_, _repr_mimebundle_...): its MIME bundle, as display() builds it, "
    "within the display size limits (metadata 'dropped' names what was left out).",
    "properties": {
        "output_type": {"const": "execute_result"},
        "data": {"type": "object"},
        "metadata": {"type": "object"},
    },
    "required": ["output_type", "data", "metadata"],
}


def _value_defs() -> dict[str, JsonSchemaValue]:
    tagged = {
        "TaggedValue" + tag[1:].capitalize(): {
            "type": "object",
            "description": _TAG_DESCRIPTIONS[tag],
            "properties": {tag: schema},
            "required": [tag],
            "additionalProperties": False,
        }
        for tag, schema in VALUE_TAGS.items()
    }
    value: JsonSchemaValue = {
        "description": "A Python value on the wire: JSON, where an object whose only "
        "key starts with '$' is a tagged form. Senders wrap a dict that would look "
        "like one in '$dict'; receivers read an object with an unknown single '$' "
        "key as a plain dict (forward compatible).",
        "oneOf": [
            {"type": ["null", "boolean", "number", "string"]},
            {"type": "array", "items": {"$ref": "#/$defs/Value"}},
            {
                "type": "object",
                "description": "A dict with string keys.",
                "additionalProperties": {"$ref": "#/$defs/Value"},
                "not": {
                    "minProperties": 1,
                    "maxProperties": 1,
                    "propertyNames": {"pattern": "^\\$"},
                },
            },
            *({"$ref": f"#/$defs/{name}"} for name in tagged),
        ],
    }
    handle_ref: JsonSchemaValue = {
        "type": "object",
        "description": "Inside '$handle'. Replies carry id, type and repr; a request "
        "needs only 'id'.",
        "properties": {
            "id": {"type": "string"},
            "type": {"type": "string"},
            "repr": {"type": "string"},
            "bundle": _BUNDLE,
        },
        "required": ["id"],
    }
    return {"Value": value, "HandleRef": handle_ref, **tagged}


def value_definitions(root: str = "#/$defs/") -> dict[str, JsonSchemaValue]:
    """The ``Value`` definition, its tagged forms and ``HandleRef``, by name.

    Args:
        root: Where the definitions live in the document that embeds them; their
            references to each other point there.

    Returns:
        The definitions, to put under ``root``.

    Example::

        openapi["components"]["schemas"].update(
            value_definitions("#/components/schemas/")
        )
    """
    text = json.dumps(_value_defs()).replace('"#/$defs/', json.dumps(root)[:-1])
    defs: dict[str, JsonSchemaValue] = json.loads(text)
    return defs


def _reply(id_def: str, member: str, schema: JsonSchemaValue) -> JsonSchemaValue:
    """A reply: its ``id`` and ``member`` (``result`` or ``error``), never the other."""
    other = "error" if member == "result" else "result"
    return {
        "type": "object",
        "properties": {"id": {"$ref": f"#/$defs/{id_def}"}, member: schema},
        "required": ["id", member],
        "not": {"required": [other]},
    }


def _envelope_defs() -> dict[str, JsonSchemaValue]:
    return {
        "RequestId": {
            "description": "Chosen by the client, echoed in the reply and events; "
            "unique among the connection's unanswered requests.",
            "type": ["integer", "string"],
        },
        "ReplyId": {
            "description": "The request's id, or null when it could not be read "
            "(a line that is not JSON or has no valid id, an over-long line whose "
            "first member is not its id, a refused connection).",
            "type": ["integer", "string", "null"],
        },
        "ErrorCode": {
            "description": "Machine-readable error code; a client treats a code it "
            "does not know as a generic error.",
            "enum": [code.value for code in ErrorCode],
        },
        "SuccessResponse": _reply("RequestId", "result", {"type": "object"}),
        "ErrorResponse": _reply("ReplyId", "error", {"$ref": "#/$defs/ErrorBody"}),
        "Response": {
            "description": "The one reply to a request: result xor error.",
            "oneOf": [
                {"$ref": "#/$defs/SuccessResponse"},
                {"$ref": "#/$defs/ErrorResponse"},
            ],
        },
        "Event": {
            "description": "Output of a running 'exec' with stream: true, sent before "
            "its reply: a chunk of stdout or stderr, or one rich output (display).",
            "type": "object",
            "properties": {
                "id": {"$ref": "#/$defs/RequestId"},
                "event": {"enum": ["stdout", "stderr", "display"]},
                "data": {},
            },
            "required": ["id", "event", "data"],
            "not": {"anyOf": [{"required": ["result"]}, {"required": ["error"]}]},
            "if": {"properties": {"event": {"const": "display"}}},
            "then": {"properties": {"data": {"$ref": "#/$defs/Output"}}},
            "else": {"properties": {"data": {"type": "string"}}},
        },
    }


class _Generator(GenerateJsonSchema):
    """Pydantic's generator, minus per-field titles, with ``Any`` meaning a wire value."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False

    def any_schema(self, schema: core_schema.AnySchema) -> JsonSchemaValue:
        # A marker, swapped for a $ref afterwards: pydantic resolves refs it emits.
        return dict(_ANY_MARKER)


_ANY_MARKER: JsonSchemaValue = {"x-beephost-any": True}


def _point_any_at_value(node: Any) -> Any:
    """Replace every ``Any`` marker with a reference to the wire value definition."""
    if isinstance(node, dict):
        if node.keys() >= _ANY_MARKER.keys() and node.get("x-beephost-any") is True:
            rest = {k: v for k, v in node.items() if k not in _ANY_MARKER}
            return {"$ref": "#/$defs/Value", **_point_any_at_value(rest)}
        return {key: _point_any_at_value(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_point_any_at_value(item) for item in node]
    return node


def _name(command: str) -> str:
    return "".join(part.capitalize() for part in command.replace("_", ".").split("."))


#: Result fields a server leaves out when they hold nothing (exec's rich outputs,
#: the held read of a file.read without hold).
_OPTIONAL = frozenset({"outputs", "outputs_dropped", "reader"})


def _model_defs() -> dict[str, JsonSchemaValue]:
    entries: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        (model, "validation") for model in all_commands().values()
    ]
    entries += [(model, "serialization") for model in dict.fromkeys(RESULTS.values())]
    entries += [(models.ErrorBody, "serialization")]
    _, top = models_json_schema(
        entries, ref_template="#/$defs/{model}", schema_generator=_Generator
    )
    defs: dict[str, JsonSchemaValue] = _point_any_at_value(top["$defs"])
    for model in dict.fromkeys(RESULTS.values()):
        # The server always sends every result field (defaults included).
        definition = defs[model.__name__]
        if definition.get("properties"):
            definition["required"] = [
                name for name in definition["properties"] if name not in _OPTIONAL
            ]
    # Bundles hold plain JSON (base64 text for images), not value-encoded data.
    output = defs["Output"]
    output["required"] = ["output_type", "data", "metadata"]
    output["properties"]["data"]["additionalProperties"] = {}
    output["properties"]["metadata"]["additionalProperties"] = {}
    error = defs["ErrorBody"]
    error["required"] = ["code", "message", "data"]
    error["properties"]["code"] = {"$ref": "#/$defs/ErrorCode"}
    error["properties"]["data"] = {
        "type": "object",
        "description": "Details, plain JSON (not value-encoded); the fields depend "
        "on the code (see docs/protocol/errors.md).",
    }
    return defs


def _command_defs(
    defs: dict[str, JsonSchemaValue],
) -> tuple[dict[str, JsonSchemaValue], dict[str, dict[str, str]]]:
    out: dict[str, JsonSchemaValue] = {}
    table: dict[str, dict[str, str]] = {}
    for command, model in all_commands().items():
        name = _name(command)
        params: JsonSchemaValue = {"$ref": f"#/$defs/{model.__name__}"}
        required = ["id", "type"]
        if defs[model.__name__].get("required"):
            required.append("params")
        out[f"{name}Request"] = {
            "type": "object",
            "description": f"Request '{command}'. " + (model.__doc__ or "").strip(),
            "properties": {
                "id": {"$ref": "#/$defs/RequestId"},
                "type": {"const": command},
                "params": params,
            },
            "required": required,
        }
        out[f"{name}Response"] = {
            "description": f"The reply to '{command}'.",
            "oneOf": [
                {
                    "allOf": [{"$ref": "#/$defs/SuccessResponse"}],
                    "properties": {
                        "result": {"$ref": f"#/$defs/{RESULTS[command].__name__}"}
                    },
                },
                {"$ref": "#/$defs/ErrorResponse"},
            ],
        }
        table[command] = {
            "request": f"#/$defs/{name}Request",
            "response": f"#/$defs/{name}Response",
        }
    out["Request"] = {
        "description": "Any request, told apart by 'type'.",
        "oneOf": [{"$ref": ref["request"]} for ref in table.values()],
    }
    return out, table


def build_schema() -> dict[str, Any]:
    """Build the pipe protocol's JSON Schema from the models.

    Returns:
        The schema as a JSON-ready dict, deterministic for a given pydantic version.

    Example::

        schema = build_schema()
        schema["x-commands"]["eval"]["response"]  # '#/$defs/EvalResponse'
    """
    defs = _model_defs()
    commands, table = _command_defs(defs)
    defs.update(commands)
    defs.update(_envelope_defs())
    defs.update(_value_defs())
    return {
        "$schema": DRAFT,
        "$id": SCHEMA_ID,
        "title": f"Beep Python Host pipe protocol {models.PROTOCOL_VERSION}",
        "description": "One line on the wire: a request, a response or an event. "
        "Generated by 'python -m beephost_protocol.schema' from beephost_protocol's "
        "models; the spec is docs/protocol/pipe.md. Do not edit.",
        "x-protocol-version": models.PROTOCOL_VERSION,
        "x-commands": table,
        "oneOf": [
            {"$ref": "#/$defs/Request"},
            {"$ref": "#/$defs/Response"},
            {"$ref": "#/$defs/Event"},
        ],
        "$defs": dict(sorted(defs.items())),
    }


def render(schema: dict[str, Any]) -> str:
    """Serialise a schema the way it is committed (stable, two-space indent)."""
    return json.dumps(schema, indent=2, ensure_ascii=True) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Write the schema, or with ``--check`` report whether the committed one is stale.

    Returns:
        0 on success, 1 when ``--check`` finds the file missing or different.
    """
    parser = argparse.ArgumentParser(
        prog="python -m beephost_protocol.schema",
        description="Write or check the pipe protocol's JSON Schema.",
    )
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the file is stale"
    )
    parser.add_argument("--output", type=Path, default=SCHEMA_PATH, help="target file")
    args = parser.parse_args(argv)
    text = render(build_schema())
    if args.check:
        try:
            current = args.output.read_text(encoding="utf-8")
        except FileNotFoundError:
            current = ""
        if current != text:
            sys.stderr.write(
                f"{args.output} is stale; run: python -m beephost_protocol.schema\n"
            )
            return 1
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    sys.stdout.write(f"wrote {args.output}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

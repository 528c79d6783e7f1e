"""The committed pipe-protocol JSON Schema is fresh, valid, and agrees with the spec's examples.

The examples in docs/protocol/pipe.md are found by their markers: an HTML comment on the
line right before a json fence (see "How to read the examples" in the doc)::

    <!-- request -->                 a frame the client sends
    <!-- request pause=0.5 -->       ... sent 0.5 s after the previous one, unanswered
    <!-- request invalid -->         ... deliberately not valid (the schema rejects it,
                                     or it is not even strict JSON: NaN, Infinity)
    <!-- response -->                the reply the server sends
    <!-- response closes -->         ... after which the server closes the connection
    <!-- response vary=a.b,c.*.d --> ... where the values at these paths vary by run
    <!-- request payload=B64 -->     ... a binary frame: its payload (base64 here, raw on
                                     the wire) is the message's data (pipe.md §4)
    <!-- response payload=B64 -->    ... a reply sent as a binary frame, likewise
    <!-- event -->                   an event (streamed output) the server sends
    <!-- example -->                 an illustration that is validated, not replayed
    <!-- example for=eval -->        ... validated as a reply to that command

Consecutive request blocks followed by their response and event blocks form an
*exchange*; the exchanges, in document order, are one transcript that
tests/integration/test_protocol_docs.py replays against a real server. A response whose
``id`` is null answers the one (invalid) request of its exchange.
"""

import base64
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from beephost_protocol import (
    COMMANDS,
    GRPC_STATUS,
    HTTP_STATUS,
    ErrorCode,
    Handle,
    decode_value,
    encode_value,
)
from beephost_protocol import values as codec
from beephost_protocol.schema import (
    DRAFT,
    RESULTS,
    SCHEMA_PATH,
    VALUE_TAGS,
    all_commands,
    build_schema,
    main,
    render,
)
from tests.unit.core.worker_module import load_worker

ROOT = Path(__file__).resolve().parents[3]
PIPE_DOC = ROOT / "docs" / "protocol" / "pipe.md"
ERRORS_DOC = ROOT / "docs" / "protocol" / "errors.md"

KINDS = ("request", "response", "event", "example")
_MARKER = re.compile(r"^<!--\s*(?P<kind>[a-z]+)(?P<attrs>(?:\s+[^\s>]+)*)\s*-->\s*$")
_FENCE = re.compile(r"^```(?P<info>\S*)\s*$")


@dataclass(frozen=True)
class Block:
    """One marked json fence of the doc."""

    kind: str
    line: int  # 1-based line of the fence's first content line
    attrs: dict[str, str]
    message: dict[str, Any]
    strict: bool = True  # False: holds NaN or Infinity (only in an invalid request)

    @property
    def vary(self) -> list[str]:
        return [path for path in self.attrs.get("vary", "").split(",") if path]

    @property
    def pause(self) -> float:
        return float(self.attrs.get("pause", "0"))

    @property
    def payload(self) -> bytes | None:
        """The binary payload sent after the line (pipe.md §4), if any."""
        text = self.attrs.get("payload")
        return None if text is None else base64.b64decode(text, validate=True)

    @property
    def logical(self) -> dict[str, Any]:
        """The message as the schema describes it: a payload is its ``data``."""
        payload = self.payload
        if payload is None:
            return self.message
        where = "params" if self.kind == "request" else "result"
        data = base64.b64encode(payload).decode()
        return {**self.message, where: {**self.message[where], "data": data}}

    @property
    def closes(self) -> bool:
        return "closes" in self.attrs

    @property
    def invalid(self) -> bool:
        return "invalid" in self.attrs

    def __str__(self) -> str:
        return f"{PIPE_DOC.name}:{self.line} ({self.kind})"


@dataclass
class Exchange:
    """Requests sent together, and what the server answers them with, in order."""

    requests: list[Block] = field(default_factory=list)
    replies: list[Block] = field(default_factory=list)  # responses and events

    def command_of(self, reply: Block) -> str | None:
        """The known ``type`` of the request that ``reply`` answers, if any."""
        for request in self.requests:
            if request.message["id"] == reply.message.get("id"):
                kind = request.message.get("type")
                return (
                    kind if isinstance(kind, str) and kind in all_commands() else None
                )
        return None

    def anonymous(self) -> bool:
        """Whether a reply may carry ``"id": null``: one invalid request, id unread."""
        return len(self.requests) == 1 and self.requests[0].invalid


class DocError(AssertionError):
    """The doc breaks the example convention."""


def parse_blocks(text: str) -> list[Block]:
    """Every marked fence, in order; raise DocError for unmarked or unparsable json."""
    lines = text.splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        end = next(
            (j for j in range(index + 1, len(lines)) if lines[j].startswith("```")),
            None,
        )
        if end is None:
            raise DocError(f"line {index + 1}: fence never closed")
        marker = _MARKER.match(lines[index - 1]) if index else None
        info = opening["info"]
        if info == "json":
            if marker is None or marker["kind"] not in KINDS:
                raise DocError(
                    f"line {index + 1}: a json fence needs a marker line right "
                    f"before it, one of {', '.join(KINDS)}"
                )
            body = "\n".join(lines[index + 1 : end])
            attrs = _attrs(marker["attrs"])
            strict = True
            try:
                message = json.loads(body, parse_constant=_no_constants)
            except ValueError as exc:
                if marker["kind"] != "request" or "invalid" not in attrs:
                    raise DocError(
                        f"line {index + 2}: not strict JSON: {exc}"
                    ) from None
                message, strict = json.loads(body), False  # NaN on purpose
            if not isinstance(message, dict):
                raise DocError(f"line {index + 2}: a message is a JSON object")
            blocks.append(Block(marker["kind"], index + 2, attrs, message, strict))
        elif marker is not None and marker["kind"] in KINDS:
            raise DocError(f"line {index + 1}: marked fence must be ```json")
        index = end + 1
    return blocks


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _attrs(text: str) -> dict[str, str]:
    attrs: dict[str, str] = {}
    for token in text.split():
        key, _, value = token.partition("=")
        attrs[key] = value
    return attrs


def exchanges(blocks: list[Block]) -> list[Exchange]:
    """Group the replayable blocks into exchanges and check each is well formed."""
    result: list[Exchange] = []
    for block in blocks:
        if block.kind == "example":
            continue
        if block.kind == "request":
            if not result or result[-1].replies:
                result.append(Exchange())
            result[-1].requests.append(block)
        elif not result:
            raise DocError(f"{block}: a reply before any request")
        else:
            result[-1].replies.append(block)
    for exchange in result:
        ids = [request.message.get("id") for request in exchange.requests]
        if len(set(map(json.dumps, ids))) != len(ids):
            raise DocError(f"{exchange.requests[0]}: ids repeat within an exchange")
        if exchange.anonymous() and not any(
            reply.message.get("id") == ids[0] for reply in exchange.replies
        ):
            ids = [None]  # answered as an unreadable line
        for request_id in ids:
            answers = [
                reply
                for reply in exchange.replies
                if reply.kind == "response" and reply.message.get("id") == request_id
            ]
            if len(answers) != 1:
                raise DocError(
                    f"{exchange.requests[0]}: request {request_id!r} needs exactly "
                    f"one response block, has {len(answers)}"
                )
        for reply in exchange.replies:
            if reply.message.get("id") not in ids:
                raise DocError(f"{reply}: answers no request of its exchange")
    return result


def load_doc() -> list[Block]:
    return parse_blocks(PIPE_DOC.read_text(encoding="utf-8"))


# -- the schema itself -----------------------------------------------------------------


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return loaded


def validator(schema: dict[str, Any], ref: str = "#") -> Draft202012Validator:
    """A draft 2020-12 validator for the definition at ``ref`` (a JSON pointer)."""
    if ref == "#":
        return Draft202012Validator(schema)
    return Draft202012Validator({"$ref": ref, **{"$defs": schema["$defs"]}})


def test_committed_schema_is_fresh() -> None:
    assert SCHEMA_PATH.read_text(encoding="utf-8") == render(build_schema()), (
        "stale: run `uv run python -m beephost_protocol.schema`"
    )
    assert main(["--check"]) == 0


def test_check_flags_a_stale_or_missing_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "pipe.schema.json"
    assert main(["--check", "--output", str(target)]) == 1
    assert main(["--output", str(target)]) == 0
    assert main(["--check", "--output", str(target)]) == 0
    target.write_text(target.read_text().replace('"1.0"', '"0.9"'))
    assert main(["--check", "--output", str(target)]) == 1
    assert "stale" in capsys.readouterr().err


def test_schema_is_valid_draft_2020_12(schema: dict[str, Any]) -> None:
    assert schema["$schema"] == DRAFT
    Draft202012Validator.check_schema(schema)
    # Every $ref resolves.
    refs = set(re.findall(r'"\$ref": "(#/\$defs/[^"]+)"', json.dumps(schema)))
    for ref in refs:
        assert ref.removeprefix("#/$defs/") in schema["$defs"], ref


def test_schema_covers_every_command(schema: dict[str, Any]) -> None:
    expected = {"hello", "ping", *COMMANDS}
    assert set(schema["x-commands"]) == expected
    assert set(RESULTS) == expected
    assert set(all_commands()) == expected


def test_error_codes_are_the_taxonomy(schema: dict[str, Any]) -> None:
    assert schema["$defs"]["ErrorCode"]["enum"] == [code.value for code in ErrorCode]


@pytest.mark.parametrize(
    "message",
    [
        {"id": 1, "type": "no.such.command"},
        {"id": True, "type": "ping"},
        {"id": 1.5, "type": "ping"},
        {"type": "ping"},
        {"id": 1, "type": "eval"},
        {"id": 1, "type": "eval", "params": {"expression": "1", "timeout": 0}},
        {
            "id": 1,
            "result": {},
            "error": {"code": "internal", "message": "", "data": {}},
        },
        {"id": 1, "error": {"code": "oops", "message": "", "data": {}}},
        {"id": 1, "event": "stdin", "data": ""},
        {
            "id": 1,
            "type": "eval",
            "params": {"expression": "x", "locals": {"x": {"$float": "NaN"}}},
        },
        {
            "id": 1,
            "type": "object.call",
            "params": {"handle": "h", "args": [{"$handle": {}}]},
        },
    ],
)
def test_schema_rejects(schema: dict[str, Any], message: dict[str, Any]) -> None:
    assert not validator(schema).is_valid(message)


@pytest.mark.parametrize(
    "value",
    [
        None,
        [1, 2.5, "x", True],
        (1, (2, 3)),
        b"\x00\xff",
        float("nan"),
        float("-inf"),
        {1: "one", (0, 0): "origin"},
        {"$ref": "looks like a tag"},
        {"nested": {"$tuple": "still a dict"}},
        Handle("h0", "datetime.date", "datetime.date(2024, 5, 17)"),
    ],
    ids=repr,
)
def test_value_schema_accepts_what_the_codec_sends(
    schema: dict[str, Any], value: Any
) -> None:
    validator(schema, "#/$defs/Value").validate(encode_value(value))


def _worker_tags() -> tuple[str, ...]:
    tags: tuple[str, ...] = load_worker("beephost_worker_tags")._TAGS
    return tags


def test_value_tags_are_the_decoders_tags() -> None:
    # The schema, the client decoder and the worker know the same tags; any other
    # single "$" key is a plain dict to both decoders.
    assert set(VALUE_TAGS) == set(codec._TAGS) == set(_worker_tags())


def test_an_unknown_tag_is_not_sent_but_is_read_as_a_plain_dict(
    schema: dict[str, Any],
) -> None:
    unknown = {"$future": [1, {"$float": "inf"}]}
    # Senders wrap it (the schema describes what a conforming sender sends) ...
    assert not validator(schema, "#/$defs/Value").is_valid(unknown)
    assert encode_value({"$future": [1]}) == {"$dict": {"$future": [1]}}
    # ... and receivers read it as a dict rather than fail.
    assert decode_value(unknown) == {"$future": [1, float("inf")]}


# -- the spec's examples ---------------------------------------------------------------


def test_only_an_invalid_request_may_be_loose_json() -> None:
    fence = '<!-- {} -->\n```json\n{{"id": 1, "type": "eval", "x": NaN}}\n```\n'
    (block,) = parse_blocks(fence.format("request invalid"))
    assert not block.strict
    for marker in ("request", "response", "example"):
        with pytest.raises(DocError, match="not strict JSON"):
            parse_blocks(fence.format(marker))


def test_every_json_fence_is_marked_and_parses() -> None:
    blocks = load_doc()
    assert {block.kind for block in blocks} == set(KINDS)
    exchanges(blocks)  # raises DocError on a malformed transcript


def _doc_cases() -> list[Any]:
    cases = []
    for exchange in exchanges(load_doc()):
        for block in exchange.requests:
            cases.append(pytest.param(block, None, id=f"L{block.line}-request"))
        for block in exchange.replies:
            command = exchange.command_of(block)
            cases.append(pytest.param(block, command, id=f"L{block.line}-{block.kind}"))
    for block in load_doc():
        if block.kind == "example":
            cases.append(
                pytest.param(block, block.attrs.get("for"), id=f"L{block.line}-example")
            )
    return cases


@pytest.mark.parametrize(("block", "command"), _doc_cases())
def test_doc_example_validates(
    schema: dict[str, Any], block: Block, command: str | None
) -> None:
    message = block.logical
    if block.invalid:
        # Not strict JSON is invalid whatever the schema says (it sees NaN as a number).
        assert not block.strict or not validator(schema).is_valid(message), (
            f"{block} is valid"
        )
        return
    assert block.strict
    validator(schema).validate(message)
    table = schema["x-commands"]
    if block.kind == "request":
        validator(schema, table[message["type"]]["request"]).validate(message)
    elif block.kind == "event":
        validator(schema, "#/$defs/Event").validate(message)
    elif command is not None:
        validator(schema, table[command]["response"]).validate(message)
    elif block.kind in ("response", "example"):
        # Replies to unknown commands, and to no request at all, can only be errors.
        validator(schema, "#/$defs/ErrorResponse").validate(message)


def test_catalogue_has_every_message() -> None:
    replayed = exchanges(load_doc())
    answered = {
        request.message["type"]
        for exchange in replayed
        for request in exchange.requests
        if not request.invalid
    }
    assert answered == {"hello", "ping", *COMMANDS}
    streamed = [
        exchange
        for exchange in replayed
        for request in exchange.requests
        if request.message["type"] == "exec"
        and request.message.get("params", {}).get("stream")
    ]
    assert streamed, "an `exec` with stream: true"
    assert any(reply.kind == "event" for reply in streamed[0].replies)


def _table_codes(text: str) -> set[str]:
    return set(re.findall(r"^\|\s*`([a-z_]+)`\s*\|", text, flags=re.MULTILINE))


@pytest.mark.parametrize("doc", [PIPE_DOC, ERRORS_DOC], ids=lambda p: p.name)
def test_error_tables_list_every_code(doc: Path) -> None:
    codes = _table_codes(doc.read_text(encoding="utf-8"))
    assert {code.value for code in ErrorCode} <= codes


def test_errors_doc_statuses_are_the_codes_tables() -> None:
    rows = {}
    for line in ERRORS_DOC.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 7 and re.fullmatch(r"`[a-z_]+`", cells[0]):
            rows[cells[0].strip("`")] = (
                int(cells[4].split()[0]),
                cells[5].strip("`"),
            )
    assert rows == {
        code.value: (HTTP_STATUS[code], GRPC_STATUS[code]) for code in ErrorCode
    }


def test_doc_announces_the_protocol_version(schema: dict[str, Any]) -> None:
    text = PIPE_DOC.read_text(encoding="utf-8")
    assert f'"protocol": "{schema["x-protocol-version"]}"' in text

"""Bad input at every door: the OpenAPI documents fuzzed, malformed frames at the pipe
socket and at the gRPC port.

Against real things: a ``beephost-controller`` process (the e2e fixture) and backend
containers it started for the environment ``fuzz``.

- Schemathesis (tests/reliability/fuzz_openapi.py) against the controller's and the
  http backend's ``/openapi.json``: every operation, positive and negative examples,
  deterministic, bounded; no 5xx, documented statuses, bodies and content types.
- The pipe socket: garbage, invalid UTF-8, over-long lines, wrong shapes, unknown
  commands, huge ids, depth bombs, frames before ``hello``, partial frames: each gets a
  typed error frame (docs/protocol/pipe.md sections 4, 5, 6, 13) or, where the spec
  says so, a close, while a well-behaved client on another connection keeps working.
- The gRPC port: raw bytes, malformed protobuf, unknown methods, oversized messages,
  depth bombs in ``*_json`` fields: typed statuses with ``beephost-error`` where
  docs/protocol/rpc.md section 4 promises it, health SERVING throughout.

Afterwards every backend is ``ready`` in the controller with 0 restarts.
"""

import collections
import copy
import json
import random
import socket
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
import requests
from schemathesis import Case, GenerationMode, Response

from beephost_client.controller import ControllerClient
from beephost_core.tokens import TokenCheck
from beephost_pb.exec.v1 import exec_pb2 as pb
from beephost_pipe_backend import dispatch
from beephost_protocol import pb_codec
from beephost_protocol.errors import ErrorCode
from tests.e2e.controller_process import ControllerProcess
from tests.reliability import fuzz_support as support
from tests.reliability.fuzz_openapi import FuzzPlan, OperationRun, all_checks, fuzz
from tests.reliability.summary import record

AREA = "bad input"
#: Examples per operation (positive and negative mixed), Hypothesis derandomized.
EXAMPLES = 30
#: Valid starts of a real backend container (each stopped at once).
BACKEND_STARTS = 5
#: Valid environment creations (no requirements or one tiny one: one small build).
ENVIRONMENT_CREATES = 8
#: The one requirement a fuzzed environment may have: pure Python, no dependencies.
TINY = "six==1.17.0"
INSTALL = "POST /api/v1/backends/{backend_id}/packages"
#: Positive installs (into backends that mostly do not exist: 404).
INSTALLS = 5
#: Names the fuzzing must not touch: the backends' environment, and the admin one
#: (creating it builds an image with the SDK: minutes, not a bad-input case).
PROTECTED = frozenset({support.ENVIRONMENT, "admin"})
ERROR_CODES = frozenset(code.value for code in ErrorCode)


@pytest.fixture(scope="module")
def token_api(token_controller: support.TokenController) -> Iterator[ControllerClient]:
    with token_controller.client() as client:
        yield client


def _report(runs: list[OperationRun], surface: str, transport: str) -> list[str]:
    """One summary row per operation; the failures of all of them."""
    failures = []
    for run in runs:
        if run.examples == 0:
            continue
        codes = ", ".join(f"{s}x{n}" for s, n in sorted(run.statuses.items()))
        record(
            AREA,
            f"{surface} {run.label}: {run.examples} schemathesis examples ({codes})"
            + (f"; {len(run.failures)} failed checks" if run.failures else ""),
            transport,
            "pass" if not run.failures else "FAIL",
        )
        failures += run.failures
    return failures


def _check_answer(
    surface: str,
    name: str,
    answer: support.HttpAnswer,
    status: int,
    problems: list[str],
) -> None:
    """Record whether ``answer`` has ``status`` and a known error code; if not, add
    it to ``problems``."""
    ok = answer.status == status and answer.error_code() in ERROR_CODES
    record(
        AREA,
        f"{surface} {name}: {answer.brief()}",
        "http",
        "pass" if ok else "FAIL",
    )
    if not ok:
        problems.append(f"{name}: {answer.status} {answer.body[:300]!r}")


# -- the controller's OpenAPI --------------------------------------------------------------


def _constrained(spec: dict[str, Any]) -> dict[str, Any]:
    """The document with creation bodies held to what costs little real work.

    Environments get no requirements or ``TINY`` (resolved against the index once, one
    small image built; equal environments reuse it). Backends run the ``fuzz`` environment, on a free port of
    loopback (a random host port could take one another test is about to use). Only
    positive examples use this document; negative ones use the real one.
    """
    spec = copy.deepcopy(spec)
    schemas = spec["components"]["schemas"]
    env = schemas["EnvironmentCreate"]["properties"]
    env["requirements"] = {"type": "array", "maxItems": 1, "items": {"enum": [TINY]}}
    env["requirements_txt"] = {"enum": [None, TINY]}
    # Installs: the small package (requirements are refused unless plain PEP 508: a
    # string the document allows may not be one).
    install = schemas["PackagesInstall"]["properties"]
    install["packages"] = {
        "type": "array",
        "minItems": 1,
        "maxItems": 1,
        "items": {"enum": [TINY]},
    }
    backend = schemas["BackendCreate"]["properties"]
    backend["environment"] = {"type": "string", "enum": [support.ENVIRONMENT]}
    backend["port"] = {"type": "null"}
    backend["bind_address"] = {"enum": [None, "127.0.0.1"]}
    # More CPUs than the host has is refused (400): valid by the document, not here.
    schemas["BackendLimits"]["properties"]["cpus"]["maximum"] = 1
    # No allow-lists: a host string the document allows may not be a host name, and an
    # allow-list start runs the egress proxy (their refusals are test_egress_policy's
    # and test_egress_routes' tables, their starts the egress end-to-end tests').
    env["egress"] = {"type": "null"}
    backend["egress"] = {"type": "null"}
    return spec


def _touches_protected(label: str, case: Case[Any]) -> bool:
    names = {str(case.path_parameters.get("name", ""))}
    if isinstance(case.body, dict) and "environments" in label:
        names.add(str(case.body.get("name", "")))
    return bool(names & PROTECTED)


def _same_name(label: str, case: Case[Any]) -> None:
    # A valid PUT names the environment of its path in its body too (a mismatch is
    # refused with 400): the generator draws the two apart.
    if label == "PUT /api/v1/environments/{name}" and isinstance(case.body, dict):
        case.body["name"] = case.path_parameters["name"]


@pytest.mark.docker
def test_controller_openapi(
    token_controller: support.TokenController, token_api: ControllerClient
) -> None:
    """Every operation, every schemathesis check (``--checks all``), with the token."""
    controller, api = token_controller, token_api
    backends = support.start_fuzz_backends(api)
    headers = {"Authorization": f"Bearer {controller.token}"}
    spec = requests.get(f"{controller.url}/openapi.json", timeout=30).json()
    created: list[str] = []
    started: list[str] = []

    def after(label: str, case: Case[Any], response: Response) -> None:
        if response.status_code not in (200, 201):
            return
        if label in ("POST /api/v1/environments", "PUT /api/v1/environments/{name}"):
            created.append(response.json()["name"])
        elif label == "POST /api/v1/backends":
            backend_id = response.json()["id"]
            started.append(backend_id)
            api.stop_backend(backend_id)

    creating = {
        "POST /api/v1/environments",
        "PUT /api/v1/environments/{name}",
        "POST /api/v1/backends",
        INSTALL,
    }
    started_at = time.monotonic()
    # Every operation with the real document; what creates things, negative only.
    runs = fuzz(
        spec,
        FuzzPlan(
            controller.url,
            EXAMPLES,
            headers=headers,
            checks=all_checks(),
            per_operation={"POST /api/v1/environments/admin": 0},
            modes={label: [GenerationMode.NEGATIVE] for label in creating},
            # An egress entry's grammar and refusals (public-suffix wildcards, private
            # and metadata ranges, a secret that must exist) and a requirement's
            # resolution go past what a JSON schema says: a case the document calls
            # valid may get a typed 400 there. The document says all it can (see
            # test_egress_policy's schema tables); every other check still runs.
            semantic=creating - {INSTALL},
            skip=_touches_protected,
            after=after,
        ),
    )
    # What creates things, positive, with the constrained document: real work, capped.
    runs += fuzz(
        _constrained(spec),
        FuzzPlan(
            controller.url,
            0,
            headers=headers,
            checks=all_checks(),
            prepare=_same_name,
            per_operation={
                "POST /api/v1/environments": ENVIRONMENT_CREATES,
                "PUT /api/v1/environments/{name}": ENVIRONMENT_CREATES,
                "POST /api/v1/backends": BACKEND_STARTS,
                INSTALL: INSTALLS,
            },
            modes={label: [GenerationMode.POSITIVE] for label in creating},
            skip=_touches_protected,
            after=after,
        ),
    )
    seconds = time.monotonic() - started_at
    for name in dict.fromkeys(created):
        environment = api.environment(name)
        if environment.job_id is not None:
            api.wait_job(environment.job_id, timeout=600)
        api.delete_environment(name)
    # A start the engine refused (a CPU limit over the host's: 400; a failure: 503)
    # leaves neither a row nor a container. Nothing may be left but the fuzz backends.
    ours = {b.id for b in backends.values()}
    strays = [b for b in api.backends() if b.id not in ours]
    for row in strays:
        api.stop_backend(row.id)
    containers = {b.container_id for b in api.backends()}
    leftover = {
        c
        for c in controller.owned("backend")
        if not any((full or "").startswith(c) for full in containers)
    }
    failures = _report(runs, "controller", "http")
    record(
        AREA,
        f"controller OpenAPI fuzz: {sum(r.examples for r in runs)} examples in "
        f"{seconds:.0f} s; {len(set(created))} environments created and deleted, "
        f"{len(started)} backends started and stopped; refused starts left "
        f"{len(strays)} rows",
        "http",
        "pass" if not failures and not leftover and not strays else "FAIL",
    )
    assert not leftover, f"containers left behind: {leftover}"
    assert not strays, f"rows left by refused starts: {strays}"
    assert not failures, "\n\n".join(failures)
    for backend in backends.values():
        support.assert_still_ready(api, backend)


@pytest.mark.docker
def test_controller_framework_errors_are_typed(
    controller: ControllerProcess, api: ControllerClient
) -> None:
    """Regressions: what FastAPI and Starlette answer themselves (a body they cannot
    parse, an unknown route, a wrong method) has the documented error body; a PUT's
    name obeys the name pattern and agrees with its body's; a job log's ``after`` past
    SQLite's integers, a body over the limit and a requirement naming a variable are
    typed refusals; a bind address must be an IP address (Docker publishes
    on every interface when it is not); a backend token must be printable ASCII without
    spaces (the rpc backend refuses any other at start-up: a crash loop)."""
    base = controller.url
    before = set(controller.owned("sandbox"))  # a relay made ahead may come
    cases = [
        ("JSON depth bomb body", "POST", "/api/v1/environments", b"[" * 100_000, 400),
        ("unknown route", "GET", "/api/v1/nothing-here", None, 404),
        ("wrong method", "PATCH", "/api/v1/environments", None, 405),
        (
            "PUT with a name off the pattern",
            "PUT",
            "/api/v1/environments/Bad%20Name",
            b'{"name": "bad-name"}',
            400,
        ),
        (
            "PUT whose body names another environment",
            "PUT",
            "/api/v1/environments/one",
            b'{"name": "two"}',
            400,
        ),
        (
            "job log after 2^63 (beyond SQLite's integers)",
            "GET",
            "/api/v1/jobs/job-x/log?after=9223372036854775808",
            None,
            400,
        ),
        (
            "body over the 1 MiB limit",
            "POST",
            "/api/v1/environments",
            b'{"name": "big", "requirements_txt": "' + b"#" * (2 << 20) + b'"}',
            413,
        ),
        (
            "requirement naming ${BEEPHOST_CONTROLLER_TOKEN}",
            "POST",
            "/api/v1/environments",
            b'{"name": "h", "requirements": ["x @ http://127.0.0.1:1/${BEEPHOST_CONTROLLER_TOKEN}/x"]}',
            400,
        ),
        (
            "backend with a bind address that is no IP",
            "POST",
            "/api/v1/backends",
            json.dumps(
                {"environment": "any", "type": "http", "bind_address": "garbage"}
            ).encode(),
            400,
        ),
        (
            "backend with a token gRPC metadata cannot carry",
            "POST",
            "/api/v1/backends",
            json.dumps(
                {"environment": "any", "type": "rpc", "token": "has a space 0123456789"}
            ).encode(),
            400,
        ),
    ]
    problems: list[str] = []
    for name, method, path, body, status in cases:
        answer = support.http_request(base, method, path, body=body)
        _check_answer("controller", name, answer, status, problems)
    assert "Bad Name" not in [e.name for e in api.environments()]
    assert set(controller.owned("sandbox")) == before, "a container was created"
    assert not problems, problems


# -- the http backend's OpenAPI ------------------------------------------------------------


@pytest.mark.docker
def test_http_backend_openapi(
    api: ControllerClient, fuzz_backends: dict[str, support.FuzzBackend]
) -> None:
    backend = fuzz_backends["http"]
    headers = {"Authorization": f"Bearer {backend.token}"}
    spec = requests.get(f"{backend.url}/openapi.json", headers=headers, timeout=30)
    opened: list[str] = []

    def after(label: str, case: Case[Any], response: Response) -> None:
        # A session is a worker process: close each at once (64 is the limit).
        if label == "POST /api/sessions" and response.status_code == 201:
            session = response.json()["session"]
            opened.append(session)
            closed = requests.delete(
                f"{backend.url}/api/sessions/{session}", headers=headers, timeout=30
            )
            assert closed.status_code == 200, closed.text

    started_at = time.monotonic()
    runs = fuzz(
        spec.json(),
        FuzzPlan(backend.url, EXAMPLES, headers=headers, after=after),
    )
    seconds = time.monotonic() - started_at
    failures = _report(runs, "http backend", "http")
    stray = support.still_ready(api, backend)
    record(
        AREA,
        f"http backend OpenAPI fuzz: {sum(r.examples for r in runs)} examples in "
        f"{seconds:.0f} s, {len(opened)} sessions opened and closed; "
        + (stray or "ready, 0 restarts"),
        "http",
        "pass" if not failures and not stray else "FAIL",
    )
    assert not failures, "\n\n".join(failures)
    assert not stray, stray


@pytest.mark.docker
def test_http_backend_raw_bodies(
    api: ControllerClient, fuzz_backends: dict[str, support.FuzzBackend]
) -> None:
    """What no schema generates: bodies that are no JSON, too deep or too big."""
    backend = fuzz_backends["http"]
    auth = f"Bearer {backend.token}"
    cases = [
        ("JSON depth bomb", b"[" * 100_000, 400),
        ("deep but finite JSON", b"[" * 50_000 + b"]" * 50_000, 400),
        ("invalid UTF-8", b'{"expression": "\xff\xfe"}', 400),
        ("not an object", b"[1, 2, 3]", 400),
        ("body over 32 MiB", b'{"expression": "' + b"1" * (33 << 20) + b'"}', 413),
    ]
    problems: list[str] = []
    for name, body, status in cases:
        answer = support.http_request(backend.url, "POST", "/api/eval", auth, body)
        _check_answer("http backend", name, answer, status, problems)
    # A NaN literal is no JSON: refused as on the pipe and gRPC.
    nan = b'{"expression": "x != x", "locals": {"x": NaN}}'
    answer = support.http_request(backend.url, "POST", "/api/eval", auth, nan)
    refused = (answer.status, answer.error_code()) == (400, "invalid_request")
    record(
        AREA,
        f"http backend NaN literal in the body: {answer.brief()}",
        "http",
        "pass" if refused else "FAIL",
    )
    assert refused, answer
    support.assert_still_ready(api, backend)
    assert not problems, problems


@pytest.mark.docker
def test_http_backend_file_routes(
    api: ControllerClient, fuzz_backends: dict[str, support.FuzzBackend]
) -> None:
    """The workspace's routes with what a schema cannot say: paths that climb out,
    ranges past the end, a body its digest does not match, a size over the quota
    announced before the body. Each is a typed refusal that writes nothing."""
    backend = fuzz_backends["http"]
    auth = f"Bearer {backend.token}"
    octets = {"Content-Type": "application/octet-stream"}
    written = support.http_request(
        backend.url, "PUT", "/api/files/fuzz/abc.txt", auth, b"abc", headers=octets
    )
    assert written.status == 201, written
    cases: list[tuple[str, str, str, bytes | None, dict[str, str], int]] = [
        ("dot-dot upload", "PUT", "/api/files/../../etc/x", b"x", octets, 400),
        (
            "encoded dot-dot upload",
            "PUT",
            "/api/files/..%2F..%2Fetc%2Fx",
            b"x",
            octets,
            400,
        ),
        ("absolute read outside", "GET", "/api/files/%2Fetc%2Fpasswd", None, {}, 400),
        ("read of nothing", "GET", "/api/files/fuzz/none.txt", None, {}, 404),
        ("read of a directory", "GET", "/api/files/fuzz", None, {}, 400),
        (
            "range past the end",
            "GET",
            "/api/files/fuzz/abc.txt",
            None,
            {"Range": "bytes=5-"},
            416,
        ),
        (
            "range backwards",
            "GET",
            "/api/files/fuzz/abc.txt",
            None,
            {"Range": "bytes=2-1"},
            416,
        ),
        (
            "digest mismatch",
            "PUT",
            "/api/files/fuzz/bad.txt",
            b"abc",
            {**octets, "Beephost-Sha256": "0" * 64},
            400,
        ),
        (
            "upload over a file's parent",
            "PUT",
            "/api/files/fuzz/abc.txt/x",
            b"x",
            octets,
            400,
        ),
        ("remove the workspace", "POST", "/api/fs/remove", b'{"path": "."}', {}, 400),
        (
            "a flag that is no boolean",
            "POST",
            "/api/fs/mkdir",
            b'{"path": "d", "parents": "yes"}',
            {},
            400,
        ),
        (
            "rename out",
            "POST",
            "/api/fs/rename",
            b'{"source": "fuzz/abc.txt", "destination": "../abc.txt"}',
            {},
            400,
        ),
    ]
    problems: list[str] = []
    for name, method, path, body, headers, status in cases:
        answer = support.http_request(
            backend.url, method, path, auth, body, headers=headers
        )
        _check_answer("http backend files,", name, answer, status, problems)

    # A size over the quota, announced: refused before a byte of the body is sent.
    host, port = backend.target.rsplit(":", 1)
    head = (
        "PUT /api/files/fuzz/huge.bin HTTP/1.1\r\n"
        f"Host: {backend.target}\r\nAuthorization: {auth}\r\n"
        "Content-Type: application/octet-stream\r\n"
        f"Content-Length: {1 << 40}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"
    )
    raw = support.raw_http(host, int(port), head.encode())
    status_line = raw.split(b"\r\n", 1)[0]
    refused = (
        b" 429 " in status_line
    )  # quota_exceeded's status (raw_http stops at the head)
    record(
        AREA,
        f"http backend files, 1 TiB announced: {status_line.decode(errors='replace')}",
        "http",
        "pass" if refused else "FAIL",
    )
    if not refused:
        problems.append(f"1 TiB upload: {raw[:300]!r}")

    listing = support.http_request(
        backend.url, "POST", "/api/fs/list", auth, b'{"path": "fuzz"}'
    )
    names = [entry["name"] for entry in json.loads(listing.body)["entries"]]
    assert names == ["abc.txt"], "a refused upload left something behind"
    support.assert_still_ready(api, backend)
    assert not problems, problems


# -- the pipe socket -----------------------------------------------------------------------

#: Over ``max_frame_bytes`` (32 MiB by default, announced by hello).
OVER_LIMIT = (32 << 20) + 1024


def _random_line(seed: int, size: int) -> bytes:
    data = random.Random(seed).randbytes(size)
    return data.replace(b"\n", b"") + b"\n"


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


def _frame(**fields: Any) -> bytes:
    return json.dumps(fields).encode() + b"\n"


#: (name, bytes sent after hello, the expected reply): ("error", code, id) for one error
#: frame with that code and id; ("result", id) for a success. The connection must stay
#: open after each (a ping is answered next).
# fmt: off
PIPE_FRAMES: list[tuple[str, bytes, tuple[Any, ...]]] = [
    ("garbage bytes", b"\x00\x01\xfe\xff garbage \x7f\x80\n", ("error", "invalid_request", None)),
    *[
        (f"random bytes #{seed}", _random_line(seed, 512), ("error", "invalid_request", None))
        for seed in range(5)
    ],
    ("invalid UTF-8 in a string", b'{"id": 1, "type": "eval", "params": {"expression": "\xc3\x28"}}\n', ("error", "invalid_request", None)),
    ("UTF-8-encoded surrogate", b'{"id": 1, "type": "ping", "x": "\xed\xa0\x80"}\n', ("error", "invalid_request", None)),
    ("NUL after the frame", b'{"id": 1, "type": "ping"}\x00\n', ("error", "invalid_request", None)),
    ("truncated JSON", b'{"id": 1, "type": "eval", "params": {"expr\n', ("error", "invalid_request", None)),
    ("NaN", b'{"id": 1, "type": "eval", "params": {"expression": "x", "locals": {"x": NaN}}}\n', ("error", "invalid_request", None)),
    ("Infinity", b'{"id": 1, "type": "eval", "params": {"expression": "1", "timeout": Infinity}}\n', ("error", "invalid_request", None)),
    ("a JSON array", b"[1, 2, 3]\n", ("error", "invalid_request", None)),
    ("a JSON string", b'"hello"\n', ("error", "invalid_request", None)),
    ("JSON null", b"null\n", ("error", "invalid_request", None)),
    ("no id", _frame(type="ping"), ("error", "invalid_request", None)),
    ("id true", _frame(id=True, type="ping"), ("error", "invalid_request", None)),
    ("id null", _frame(id=None, type="ping"), ("error", "invalid_request", None)),
    ("id a fraction", _frame(id=1.5, type="ping"), ("error", "invalid_request", None)),
    ("id an object", _frame(id={"a": 1}, type="ping"), ("error", "invalid_request", None)),
    ("id of 5000 digits", b'{"id": ' + b"9" * 5000 + b', "type": "ping"}\n', ("error", "invalid_request", None)),
    ("id of 100 digits", _frame(id=10**100, type="ping"), ("result", 10**100)),
    ("negative id of 100 digits", _frame(id=-(10**100), type="ping"), ("result", -(10**100))),
    ("id a 64 KiB string", _frame(id="i" * 65536, type="ping"), ("result", "i" * 65536)),
    ("id a lone surrogate", b'{"id": "\\ud800", "type": "ping"}\n', ("result", "\ud800")),
    ("no type", _frame(id=2), ("error", "invalid_request", 2)),
    ("type a number", _frame(id=3, type=7), ("error", "invalid_request", 3)),
    ("unknown type", _frame(id=4, type="session.reset"), ("error", "invalid_request", 4)),
    ("type with a lone surrogate", b'{"id": 4, "type": "\\udc80"}\n', ("error", "invalid_request", 4)),
    ("params null", _frame(id=5, type="eval", params=None), ("error", "invalid_request", 5)),
    ("params a list", _frame(id=5, type="eval", params=["1"]), ("error", "invalid_request", 5)),
    ("params a string", _frame(id=5, type="eval", params="1 + 1"), ("error", "invalid_request", 5)),
    ("eval without expression", _frame(id=6, type="eval", params={}), ("error", "invalid_request", 6)),
    ("expression a number", _frame(id=6, type="eval", params={"expression": 1}), ("error", "invalid_request", 6)),
    ("negative timeout", _frame(id=6, type="eval", params={"expression": "1", "timeout": -1}), ("error", "invalid_request", 6)),
    ("timeout a string", _frame(id=6, type="eval", params={"expression": "1", "timeout": "soon"}), ("error", "invalid_request", 6)),
    ("session a number", _frame(id=6, type="eval", params={"expression": "1", "session": 5}), ("error", "invalid_request", 6)),
    ("unknown session", _frame(id=6, type="eval", params={"expression": "1", "session": "s-0"}), ("error", "not_found", 6)),
    ("handle a tagged object", _frame(id=6, type="object.call", params={"handle": {"$handle": 1}}), ("error", "invalid_request", 6)),
    ("malformed $bytes", _frame(id=7, type="eval", params={"expression": "x", "locals": {"x": {"$bytes": "!!"}}}), ("error", "invalid_request", 7)),
    ("malformed $float", _frame(id=7, type="eval", params={"expression": "x", "locals": {"x": {"$float": "zzz"}}}), ("error", "invalid_request", 7)),
    ("malformed $map", _frame(id=7, type="eval", params={"expression": "x", "locals": {"x": {"$map": [[1]]}}}), ("error", "invalid_request", 7)),
    ("unknown $handle", _frame(id=7, type="eval", params={"expression": "x", "locals": {"x": {"$handle": {"id": "h-0"}}}}), ("error", "not_found", 7)),
    ("object.create of no dotted name", _frame(id=7, type="object.create", params={"target": "(lambda: 1)"}), ("error", "invalid_request", 7)),
    ("depth bomb, unterminated", b"[" * 100_000 + b"\n", ("error", "invalid_request", None)),
    ("depth bomb, balanced", _deep(50_000).encode() + b"\n", ("error", "invalid_request", None)),
    ("depth bomb in params", b'{"id": 8, "type": "eval", "params": {"expression": "1", "locals": {"x": ' + _deep(5000).encode() + b"}}}\n", ("error", "invalid_request", None)),
    ("nested 200 deep in locals", _frame(id=9, type="eval", params={"expression": "len(x)", "locals": {"x": json.loads(_deep(200))}}), ("result", 9)),
    ("nested 900 deep in locals", b'{"id": 9, "type": "eval", "params": {"expression": "1", "locals": {"x": ' + _deep(900).encode() + b"}}}\n", ("typed", 9)),
    ("line over the frame limit, no id", b'{"type": "ping", "pad": "' + b"x" * OVER_LIMIT + b'"}\n', ("error", "too_large", None)),
    ("line over the frame limit, id first", b'{"id": 10, "type": "ping", "pad": "' + b"x" * OVER_LIMIT + b'"}\n', ("error", "too_large", 10)),
    ("unknown envelope and params fields", b'{"id": 11, "type": "eval", "params": {"expression": "1 + 1", "hint": 1}, "trace": "x"}\n', ("result", 11)),
    ("duplicate keys", b'{"id": 12, "id": 13, "type": "ping"}\n', ("result", 13)),
    ("CRLF line end", b'{"id": 14, "type": "ping"}\r\n', ("result", 14)),
    ("blank lines first", b"\n   \n\t\n" + _frame(id=15, type="ping"), ("result", 15)),
]
# fmt: on


def _matches(reply: dict[str, Any] | None, expected: tuple[Any, ...]) -> bool:
    if reply is None:
        return False
    if expected[0] == "result":
        return bool(reply.get("id") == expected[1] and "result" in reply)
    error = reply.get("error")
    if not isinstance(error, dict) or not isinstance(error.get("message"), str):
        return False
    if expected[0] == "typed":  # any code of the taxonomy but a bug of ours
        code = error.get("code")
        return bool(
            reply.get("id") == expected[1] and code in ERROR_CODES - {"internal"}
        )
    return bool(reply.get("id") == expected[2] and error.get("code") == expected[1])


def _brief(reply: dict[str, Any] | None) -> str:
    if reply is None:
        return "closed without a reply"
    if "error" in reply:
        return f"error {reply['error'].get('code')}, id {str(reply.get('id'))[:20]}"
    return f"result, id {str(reply.get('id'))[:20]}"


@pytest.mark.docker
def test_pipe_bad_frames(
    api: ControllerClient, fuzz_backends: dict[str, support.FuzzBackend]
) -> None:
    backend = fuzz_backends["pipe"]
    path, token = backend.socket_path, backend.token
    tally = support.Tally(AREA, "pipe", "pipe")

    with support.Bystander(backend) as bystander:
        for name, data, expected in PIPE_FRAMES:
            with support.pipe_wire(path, token) as wire:
                wire.send(data)
                reply = wire.reply()
                wire.request({"id": "after", "type": "ping"})
                still_open = _matches(wire.reply(), ("result", "after"))
            got = _brief(reply) + ("" if still_open else "; connection lost")
            tally.case(name, got, _matches(reply, expected) and still_open)

        # Many bad frames in one write: one error each, in order, nothing lost.
        with support.pipe_wire(path, token) as wire:
            wire.send(b"".join(_frame(id=n, type="nope") for n in range(200)))
            ids = [(wire.reply() or {}).get("id") for _ in range(200)]
            tally.case(
                "200 bad frames in one write",
                f"{len(ids)} errors",
                ids == list(range(200)),
            )

        # One frame dribbled a byte at a time.
        with support.pipe_wire(path, token) as wire:
            for byte in _frame(id=16, type="eval", params={"expression": "6 * 7"}):
                wire.send(bytes([byte]))
            reply = wire.reply()
            tally.case(
                "a frame one byte per write",
                _brief(reply),
                reply == {"id": 16, "result": {"value": 42}},
            )

        # Before hello: invalid JSON is answered and the connection stays (nothing was
        # read from it); a command is refused and the connection closed.
        with support.pipe_wire(path) as wire:
            wire.send(b"\xff\xfe not json\n")
            reply = wire.reply()
            wire.request({"id": "after", "type": "ping"})
            ok = _matches(reply, ("error", "invalid_request", None)) and _matches(
                wire.reply(), ("result", "after")
            )
            tally.case("garbage before hello", _brief(reply), ok)
        with support.pipe_wire(path) as wire:
            wire.send(
                _frame(id=17, type="exec", params={"code": "1"})
                + _frame(id=18, type="ping")
            )
            reply = wire.reply()
            closed = wire.closed_by_server()
            ok = _matches(reply, ("error", "unauthorized", 17)) and closed
            tally.case(
                "a command before hello",
                _brief(reply) + (", closed" if closed else ""),
                ok,
            )

        # Partial frames, then the client goes away; a request in flight, then away.
        for name, data in [
            ("partial frame, then disconnect", b'{"id": 19, "type": "ev'),
            ("half a UTF-8 character, then disconnect", b'{"id": 19, "type": "\xc3'),
            ("32 MiB without a newline, then disconnect", b"x" * OVER_LIMIT),
            (
                "request in flight, then disconnect",
                _frame(
                    id=20, type="exec", params={"code": "import time; time.sleep(0.5)"}
                ),
            ),
        ]:
            with support.pipe_wire(path, token) as wire:
                wire.send(data)
            with support.pipe_wire(path, token) as wire:
                wire.request({"id": "after", "type": "ping"})
                ok = _matches(wire.reply(), ("result", "after"))
            tally.case(
                name, "the next connection is served" if ok else "not served", ok
            )

        # Connections opened and dropped at once, some mid-hello.
        for n in range(50):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(path)
            if n % 2:
                sock.sendall(b'{"id": 1, "type": "hello", "params": {"tok')
            sock.close()
        with support.pipe_wire(path, token) as wire:
            wire.request({"id": "after", "type": "ping"})
            ok = _matches(wire.reply(), ("result", "after"))
        tally.case(
            "50 connections dropped at once", "served after" if ok else "not served", ok
        )
        time.sleep(0.5)  # the bystander runs on a little after the last case

    tally.case(
        "a well-behaved client on another connection meanwhile",
        f"{bystander.calls} evaluations, {len(bystander.failures)} failures",
        bystander.calls > 0 and not bystander.failures,
    )
    logs = api.backend_logs(backend.id, tail=2000)
    crashes = [line for line in logs.splitlines() if "Fatal error" in line]
    tally.case("server log", f"{len(crashes)} fatal transport errors", not crashes)
    tally.backend_afterwards(api, backend)
    assert not tally.problems, "\n".join(
        tally.problems + bystander.failures[:5] + crashes[:2]
    )


def test_pipe_decode_frame_regressions() -> None:
    """Unit regressions of the two pipe bugs this suite found: a depth bomb raised
    RecursionError out of the protocol (the connection died without an error frame),
    and a lone surrogate as hello's token raised UnicodeEncodeError likewise."""
    with pytest.raises(dispatch.FrameError) as caught:
        dispatch.decode_frame(b"[" * 100_000)
    assert caught.value.id is None
    assert caught.value.error.wire_code == "invalid_request"
    check = TokenCheck.of_token("s3cret")
    assert check.matches("\ud800") is False
    assert check.matches("s3cret\udfff") is False
    assert check.matches("s3cret") is True


# -- the gRPC port -------------------------------------------------------------------------

METHODS = [
    "Evaluate",
    "Execute",
    "OpenSession",
    "CloseSession",
    "GetSessionInfo",
    "ListSessions",
    "Interrupt",
    "CreateObject",
    "GetAttribute",
    "SetAttribute",
    "CallMethod",
    "ReleaseObjects",
    "ListObjects",
]
#: Bytes that are no protobuf message of any type.
MALFORMED = [
    ("truncated field", b"\x0a\x05ab"),
    ("field number 0", b"\x00\x01"),
    ("varint of 11 bytes", b"\x08" + b"\xff" * 10 + b"\x01"),
    ("wire type 7", b"\x0f\x00"),
    ("truncated fixed64", b"\x09\x01\x02"),
]
RANDOM_PAYLOADS = 8  # per method, seeded
#: Over the server's max_request_bytes (32 MiB).
OVERSIZED = 33 << 20


def _typed(outcome: support.GrpcOutcome) -> bool:
    """OK, or a status with beephost-error of the taxonomy; never an internal bug."""
    if outcome.status == grpc.StatusCode.OK:
        return True
    return outcome.code in ERROR_CODES and outcome.status != grpc.StatusCode.INTERNAL


def _raw_tcp(host: str, port: int, data: bytes) -> str:
    """Send bytes to the port; what came back before the server closed or went quiet."""
    received = 0
    with socket.create_connection((host, port), timeout=5) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
            while chunk := sock.recv(65536):
                received += len(chunk)
        except OSError as exc:  # reset, broken pipe, not connected, timed out
            return f"{received} bytes back, then {type(exc).__name__}"
    return f"{received} bytes back, then closed"


@pytest.mark.docker
def test_grpc_bad_calls(
    api: ControllerClient, fuzz_backends: dict[str, support.FuzzBackend]
) -> None:
    backend = fuzz_backends["rpc"]
    metadata = [("authorization", f"Bearer {backend.token}")]
    host, port = backend.target.rsplit(":", 1)
    tally = support.Tally(AREA, "gRPC", "grpc")

    def serving(channel: grpc.Channel) -> bool:
        check = support.grpc_call(channel, "/grpc.health.v1.Health/Check", b"")
        return check.reply == b"\x08\x01"

    options = [("grpc.max_send_message_length", 64 << 20)]
    with (
        support.Bystander(backend) as bystander,
        grpc.insecure_channel(backend.target, options=options) as channel,
    ):
        # Raw bytes on the TCP port: not HTTP/2, or HTTP/2 gone wrong.
        preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
        for name, data in [
            ("HTTP/1.1 request", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
            ("random bytes", random.Random(7).randbytes(4096)),
            ("1 MiB of zeros", bytes(1 << 20)),
            ("HTTP/2 preface, then random frames", preface + random.Random(8).randbytes(2048)),
            ("HTTP/2 preface, then a frame of 16 MiB announced", preface + b"\xff\xff\xff\x00\x00\x00\x00\x00\x01"),
            ("HTTP/2 preface, then HEADERS with garbage HPACK", preface + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00" + b"\x00\x00\x08\x01\x05\x00\x00\x00\x01" + b"\xff" * 8),
            ("nothing, then close", b""),
        ]:  # fmt: skip
            what = _raw_tcp(host, int(port), data)
            ok = serving(channel)
            tally.case(
                f"raw TCP: {name}", what + ("; SERVING" if ok else "; NOT SERVING"), ok
            )

        for method in METHODS:
            for name, payload in MALFORMED:
                outcome = support.grpc_call(
                    channel, support.EXECUTOR + method, payload, metadata
                )
                # protobuf's parser takes some of these for an empty message (a field
                # numbered 0 in ListSessionsRequest): then the call runs, typed.
                ok = outcome.status == grpc.StatusCode.OK or (
                    outcome.status == grpc.StatusCode.INVALID_ARGUMENT
                    and outcome.code == "invalid_request"
                )
                tally.case(f"{method} {name}", outcome.brief(), ok)
            rng = random.Random(method)
            statuses: collections.Counter[str] = collections.Counter()
            untyped = 0
            for _ in range(RANDOM_PAYLOADS):
                payload = rng.randbytes(rng.randrange(1, 200))
                outcome = support.grpc_call(
                    channel, support.EXECUTOR + method, payload, metadata
                )
                statuses[outcome.brief()] += 1
                untyped += not _typed(outcome)
                if method == "OpenSession" and outcome.reply is not None:
                    # A session is a worker process: close it at once.
                    ref = pb.SessionRef(
                        session=pb.OpenSessionReply.FromString(outcome.reply).session
                    )
                    closing = support.EXECUTOR + "CloseSession"
                    support.grpc_call(
                        channel, closing, ref.SerializeToString(), metadata
                    )
            tally.case(
                f"{method} {RANDOM_PAYLOADS} random payloads",
                ", ".join(f"{s} x{n}" for s, n in sorted(statuses.items())),
                untyped == 0,
            )
        for name, payload in [
            ("invalid UTF-8 in a string field", b"\x12\x02\xff\xfe"),
        ]:
            outcome = support.grpc_stream_call(
                channel, support.EXECUTOR + "ExecuteStream", payload, metadata
            )
            tally.case(
                f"ExecuteStream {name}",
                outcome.brief(),
                outcome.code == "invalid_request",
            )
        for name, payload in MALFORMED[:2]:
            outcome = support.grpc_stream_call(
                channel, support.EXECUTOR + "ExecuteStream", payload, metadata
            )
            ok = (
                outcome.status == grpc.StatusCode.INVALID_ARGUMENT
                and outcome.code == "invalid_request"
            )
            tally.case(f"ExecuteStream {name}", outcome.brief(), ok)

        # Valid messages with bad JSON inside.
        for name, message, method in [
            ("depth bomb in locals_json", pb.EvaluateRequest(expression="1", locals_json="[" * 100_000), "Evaluate"),
            ("balanced depth bomb in locals_json", pb.EvaluateRequest(expression="1", locals_json=_deep(50_000)), "Evaluate"),
            ("depth bomb in args_json", pb.CallMethodRequest(handle="h", args_json="[" * 100_000), "CallMethod"),
            ("depth bomb in value_json", pb.SetAttributeRequest(handle="h", name="x", value_json=_deep(5000)), "SetAttribute"),
            ("NaN in locals_json", pb.EvaluateRequest(expression="1", locals_json='{"x": NaN}'), "Evaluate"),
            ("locals_json a list", pb.EvaluateRequest(expression="1", locals_json="[]"), "Evaluate"),
            ("integer of 5000 digits", pb.EvaluateRequest(expression="x", locals_json='{"x": ' + "9" * 5000 + "}"), "Evaluate"),
            ("malformed $bytes", pb.EvaluateRequest(expression="x", locals_json='{"x": {"$bytes": "!!"}}'), "Evaluate"),
        ]:  # fmt: skip
            outcome = support.grpc_call(
                channel,
                support.EXECUTOR + method,
                message.SerializeToString(),
                metadata,
            )
            ok = (
                outcome.status == grpc.StatusCode.INVALID_ARGUMENT
                and outcome.code == "invalid_request"
            )
            tally.case(name, outcome.brief(), ok)
        outcome = support.grpc_call(
            channel,
            support.EXECUTOR + "Evaluate",
            pb.EvaluateRequest(
                expression="1", locals_json='{"x": ' + _deep(900) + "}"
            ).SerializeToString(),
            metadata,
        )
        tally.case(
            "nested 900 deep in locals_json",
            outcome.brief(),
            _typed(outcome) and outcome.code != "internal",
        )

        # Names that do not exist: gRPC's own UNIMPLEMENTED, no beephost-error.
        for name, method in [
            ("unknown method", support.EXECUTOR + "Explode"),
            ("unknown service", "/beephost.exec.v2.Executor/Evaluate"),
            ("not a method path", "/nothing"),
        ]:
            outcome = support.grpc_call(channel, method, b"", metadata)
            tally.case(
                name,
                outcome.brief(),
                outcome.status == grpc.StatusCode.UNIMPLEMENTED,
            )

        # Over max_request_bytes: RESOURCE_EXHAUSTED from gRPC, the server keeps serving.
        outcome = support.grpc_call(
            channel,
            support.EXECUTOR + "Evaluate",
            b"\x12" + b"x" * OVERSIZED,
            metadata,
            timeout=60,
        )
        tally.case(
            "message of 33 MiB",
            outcome.brief(),
            outcome.status == grpc.StatusCode.RESOURCE_EXHAUSTED,
        )
        outcome = support.grpc_call(
            channel,
            support.EXECUTOR + "Evaluate",
            pb.EvaluateRequest(expression="6 * 7").SerializeToString(),
            metadata,
        )
        tally.case(
            "a good call afterwards",
            outcome.brief(),
            outcome.reply == b"\n\x0242",
        )
        time.sleep(0.5)
        ok = serving(channel)
        tally.case("health afterwards", "SERVING" if ok else "NOT SERVING", ok)

    tally.case(
        "a well-behaved client on another channel meanwhile",
        f"{bystander.calls} evaluations, {len(bystander.failures)} failures",
        bystander.calls > 0 and not bystander.failures,
    )
    tally.backend_afterwards(api, backend)
    assert not tally.problems, "\n".join(tally.problems + bystander.failures[:5])


@pytest.mark.anyio
async def test_grpc_malformed_request_regressions(env_python: str) -> None:
    """In-process regressions of the gRPC bugs this suite found: bytes that are no
    protobuf message got UNKNOWN without ``beephost-error`` (also without a token,
    where UNAUTHENTICATED is due); a depth bomb in a ``*_json`` field got INTERNAL."""
    from tests.integration.rpc.support import TOKEN, backends, bearer

    async with backends(env_python) as start:
        server = await start(token=TOKEN)
        channel = server.channel()
        evaluate = channel.unary_unary(support.EXECUTOR + "Evaluate", None, None)
        stream = channel.unary_stream(support.EXECUTOR + "ExecuteStream", None, None)
        bomb = pb.EvaluateRequest(expression="1", locals_json="[" * 100_000)
        for payload, auth, status, code in [
            (b"\x0a\x05ab", bearer(TOKEN), "INVALID_ARGUMENT", "invalid_request"),
            (b"\x0a\x05ab", (), "UNAUTHENTICATED", "unauthorized"),
            (
                bomb.SerializeToString(),
                bearer(TOKEN),
                "INVALID_ARGUMENT",
                "invalid_request",
            ),
        ]:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await evaluate(payload, metadata=auth, timeout=10)
            assert caught.value.code().name == status
            error = pb_codec.error_from_metadata(caught.value.trailing_metadata())
            assert error is not None
            assert error.wire_code == code
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in stream(b"\x0a\x05ab", metadata=bearer(TOKEN), timeout=10):
                pass
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        reply = await evaluate(
            pb.EvaluateRequest(expression="6 * 7").SerializeToString(),
            metadata=bearer(TOKEN),
            timeout=10,
        )
        assert reply == b"\n\x0242"

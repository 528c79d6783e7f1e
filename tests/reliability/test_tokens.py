"""Missing, wrong and near-miss tokens on every surface that takes one.

Surfaces: the controller's REST API over TCP (a controller started WITH a token), its
admin Unix socket (``<socket_root>/controller/api.sock``, which needs a token even when
the TCP API has none), and the three backends it starts (http: ``Authorization``
header, gRPC: ``authorization`` metadata, pipe: the ``hello`` frame's token).

Every refusal must be the typed unauthorized error (HTTP 401 with
``{"error": {"code": "unauthorized"}}`` and ``WWW-Authenticate: Bearer``; gRPC
UNAUTHENTICATED with ``beephost-error`` code ``unauthorized``; a pipe error frame
``unauthorized`` and the connection closed), never a 5xx, and the right token must
still work afterwards.

Open by design (no token; checked here with none and with a wrong one):
- controller: ``/health``, ``/ready``, ``/metrics`` (probes and scrapers carry no
  token; routes/health.py);
- http backend: ``/health`` and ``/ready`` only (``/metrics``, ``/openapi.json`` and
  ``/docs`` need the token: docs/protocol/http.md section 2);
- gRPC backend: the standard health service and reflection (rpc.md section 5);
- pipe backend: ``ping`` before ``hello`` (pipe.md section 6).

Whitespace padding is not a near miss of the secret, and the surfaces treat it
differently (both fail-safe): HTTP's parser drops leading whitespace of a field value,
RFC 9110 says trailing whitespace is no part of it either and RFC 7235 allows several
spaces after the scheme. The http backend strips the credentials and accepts
``Bearer  TOKEN `` ; the controller compares what follows the first space byte for byte
and refuses it; gRPC requires exactly one space (rpc.md section 5); the pipe compares
the JSON string exactly. A raw newline in the header is refused by the HTTP parser
(400) before any application code runs.
"""

from collections.abc import Callable, Iterator

import grpc
import pytest

from beephost_client.controller import ControllerClient
from beephost_pb.exec.v1 import exec_pb2 as pb
from tests.e2e.controller_process import ControllerProcess
from tests.reliability import fuzz_support as support

pytestmark = pytest.mark.docker

AREA = "tokens"


@pytest.fixture(scope="module")
def api(token_controller: support.TokenController) -> Iterator[ControllerClient]:
    """A client of the controller with a token: ``fuzz_backends`` are its."""
    with token_controller.client() as client:
        yield client


# -- the variants --------------------------------------------------------------------------


def _changed(token: str, index: int) -> str:
    swap = "A" if token[index] != "A" else "B"
    return token[:index] + swap + token[index + 1 :]


def near_misses(token: str) -> list[tuple[str, str | None]]:
    """(name, credentials) that must all be refused: ``None`` sends no credentials."""
    assert token != token.swapcase(), "the token has letters"
    return [
        ("missing", None),
        ("empty", ""),
        ("scheme only", "Bearer"),
        ("scheme and a space", "Bearer "),
        ("wrong token", "Bearer " + "w" * len(token)),
        ("last char changed", f"Bearer {_changed(token, -1)}"),
        ("first char changed", f"Bearer {_changed(token, 0)}"),
        ("prefix", f"Bearer {token[:-1]}"),
        ("half", f"Bearer {token[: len(token) // 2]}"),
        ("one char appended", f"Bearer {token}A"),
        ("other case", f"Bearer {token.swapcase()}"),
        ("no scheme", token),
        ("Basic scheme", f"Basic {token}"),
        ("Token scheme", f"Token {token}"),
        ("scheme glued on", f"Bearer{token}"),
        ("scheme doubled", f"Bearer Bearer {token}"),
        ("non-ASCII appended", f"Bearer {token}\u00e9"),
    ]


#: Spellings of the right credentials that every surface accepts.
ACCEPTED = [
    ("exact", "Bearer {token}"),
    ("lower-case scheme", "bearer {token}"),
    ("upper-case scheme", "BEARER {token}"),
]


def _http_refused(answer: support.HttpAnswer) -> bool:
    return (
        answer.status == 401
        and answer.error_code() == "unauthorized"
        and answer.headers.get("www-authenticate", "").lower().startswith("bearer")
    )


def _http_passed(answer: support.HttpAnswer) -> bool:
    """Past the token check: not 401, and no server error."""
    return answer.status != 401 and answer.status < 500


def check_http_surface(
    tally: support.Tally,
    base: str,
    token: str,
    protected: list[tuple[str, str, bytes | None]],
    open_paths: list[str],
    padded_accepted: bool,
    foreign_token: str,
) -> None:
    """Every near miss on every protected route is refused, typed; then the right
    token works; the open paths answer without one."""
    host_port = base.split("://", 1)[1]
    for method, path, body in protected:
        where = f"{method} {path}"
        for name, credentials in [
            *near_misses(token),
            ("another surface's token", f"Bearer {foreign_token}"),
        ]:
            answer = support.http_request(base, method, path, credentials, body)
            tally.case(f"{where} {name}", answer.brief(), _http_refused(answer))
        # Whitespace padding of the exact token (see the module's docstring).
        for name, credentials in [
            ("trailing space", f"Bearer {token} "),
            ("two spaces after the scheme", f"Bearer  {token}"),
        ]:
            answer = support.http_request(base, method, path, credentials, body)
            ok = _http_passed(answer) if padded_accepted else _http_refused(answer)
            tally.case(f"{where} {name}", answer.brief(), ok)
        for name, spelling in ACCEPTED:
            credentials = spelling.format(token=token)
            answer = support.http_request(base, method, path, credentials, body)
            tally.case(f"{where} {name}", answer.brief(), _http_passed(answer))
    if not base.startswith("unix://"):
        host, port = host_port.rsplit(":", 1)
        for name, header in [
            ("trailing newline", f"Bearer {token}\n"),
            ("NUL appended", f"Bearer {token}\x00"),
        ]:
            request = (
                f"GET {protected[0][1]} HTTP/1.1\r\nHost: x\r\n"
                f"Authorization: {header}\r\nConnection: close\r\n\r\n"
            ).encode()
            head = support.raw_http(host, int(port), request).split(b"\r\n", 1)[0]
            ok = head.startswith((b"HTTP/1.1 400", b"HTTP/1.1 401"))
            tally.case(name, head.decode(errors="replace"), ok)
    for path in open_paths:
        for name, credentials in [("no token", None), ("wrong token", "Bearer nope")]:
            answer = support.http_request(base, "GET", path, credentials)
            tally.case(f"open GET {path} {name}", answer.brief(), answer.status < 300)
    method, path, body = protected[0]
    answer = support.http_request(base, method, path, f"Bearer {token}", body)
    tally.case("right token afterwards", answer.brief(), answer.status < 300)


@pytest.mark.parametrize(
    ("surface", "transport", "protected", "open_paths", "foreign"),
    [
        pytest.param(
            "controller REST (TCP)",
            "http",
            [
                ("GET", "/api/v1/environments"),
                ("GET", "/api/v1/config"),
                ("GET", "/api/v1/secrets"),
                ("DELETE", "/api/v1/secrets/no-such-secret"),
                ("GET", "/api/v1/backends/{foreign}/connection"),
                ("DELETE", "/api/v1/environments/no-such-env"),
            ],
            ["/health", "/ready", "/metrics"],
            "http",
            id="rest-api",
        ),
        pytest.param(
            "controller admin socket",
            "http+unix",
            [
                ("GET", "/api/v1/environments"),
                ("GET", "/api/v1/backends"),
                ("GET", "/api/v1/secrets"),
            ],
            ["/health", "/ready"],
            "pipe",
            id="admin-socket",
        ),
    ],
)
def test_controller(
    token_controller: support.TokenController,
    fuzz_backends: dict[str, support.FuzzBackend],
    surface: str,
    transport: str,
    protected: list[tuple[str, str]],
    open_paths: list[str],
    foreign: str,
) -> None:
    """The controller's REST API over TCP and its admin socket. ``foreign`` is the fuzz
    backend whose token is "another surface's"; ``{foreign}`` in a path is its id."""
    tally = support.Tally(AREA, surface, transport)
    backend = fuzz_backends[foreign]
    base = (
        token_controller.url
        if transport == "http"
        else f"unix://{token_controller.admin_socket}"
    )
    check_http_surface(
        tally,
        base,
        token_controller.token,
        protected=[
            (method, path.format(foreign=backend.id), None)
            for method, path in protected
        ],
        open_paths=open_paths,
        padded_accepted=False,
        foreign_token=backend.token,
    )
    assert not tally.problems, "\n".join(tally.problems)


def test_admin_socket_needs_a_token_when_the_tcp_api_has_none(
    controller: ControllerProcess,
) -> None:
    """The e2e controller has no token: its TCP API is open on loopback, its admin
    socket is not (deps.require_token)."""
    tally = support.Tally(
        AREA, "controller admin socket, no controller token", "http+unix"
    )
    socket_url = f"unix://{controller.socket_root / 'controller' / 'api.sock'}"
    tcp = support.http_request(controller.url, "GET", "/api/v1/environments")
    tally.case("TCP without a token", tcp.brief(), tcp.status == 200)
    for name, credentials in [
        ("missing", None),
        ("empty", ""),
        ("scheme only", "Bearer "),
        ("any token", "Bearer anything-at-all-0123456789"),
    ]:
        answer = support.http_request(
            socket_url, "GET", "/api/v1/environments", credentials
        )
        tally.case(name, answer.brief(), _http_refused(answer))
    answer = support.http_request(socket_url, "GET", "/health")
    tally.case("open GET /health", answer.brief(), answer.status == 200)
    assert not tally.problems, "\n".join(tally.problems)


def _http_backend_cases(
    tally: support.Tally, backend: support.FuzzBackend, foreign_token: str
) -> None:
    check_http_surface(
        tally,
        backend.url,
        backend.token,
        protected=[
            ("POST", "/api/eval", b'{"expression": "6 * 7"}'),
            ("GET", "/api/sessions", None),
            ("GET", "/metrics", None),
            ("GET", "/openapi.json", None),
        ],
        open_paths=["/health", "/ready"],
        padded_accepted=True,
        foreign_token=foreign_token,
    )
    # An unknown path needs the token too: no probing which routes exist.
    answer = support.http_request(backend.url, "GET", "/no/such/route")
    tally.case("unknown path, no token", answer.brief(), _http_refused(answer))


def _grpc_backend_cases(
    tally: support.Tally, backend: support.FuzzBackend, foreign_token: str
) -> None:
    token = backend.token
    request = pb.EvaluateRequest(expression="6 * 7").SerializeToString()
    stream_request = pb.ExecuteRequest(code="print(1)").SerializeToString()

    def refused(outcome: support.GrpcOutcome) -> bool:
        return (
            outcome.status == grpc.StatusCode.UNAUTHENTICATED
            and outcome.code == "unauthorized"
        )

    variants: list[tuple[str, list[tuple[str, str]]]] = [
        (name, [] if credentials is None else [("authorization", credentials)])
        for name, credentials in near_misses(token)
        if "\u00e9" not in (credentials or "")  # metadata is ASCII: grpc refuses it
    ]
    variants += [
        ("trailing space", [("authorization", f"Bearer {token} ")]),
        ("two spaces after the scheme", [("authorization", f"Bearer  {token}")]),
        ("leading space", [("authorization", f" Bearer {token}")]),
        ("another surface's token", [("authorization", f"Bearer {foreign_token}")]),
        (
            "right and wrong entries",
            [("authorization", f"Bearer {token}"), ("authorization", "Bearer x")],
        ),
        (
            "the right entry twice",
            [
                ("authorization", f"Bearer {token}"),
                ("authorization", f"Bearer {token}"),
            ],
        ),
        ("token in another key", [("x-token", f"Bearer {token}")]),
    ]
    with grpc.insecure_channel(backend.target) as channel:
        for name, metadata in variants:
            outcome = support.grpc_call(
                channel, support.EXECUTOR + "Evaluate", request, metadata
            )
            tally.case(f"Evaluate {name}", outcome.brief(), refused(outcome))
        for name, metadata in variants[:3]:
            outcome = support.grpc_stream_call(
                channel, support.EXECUTOR + "ExecuteStream", stream_request, metadata
            )
            tally.case(f"ExecuteStream {name}", outcome.brief(), refused(outcome))
        # A malformed request without the token is refused as unauthenticated too.
        outcome = support.grpc_call(
            channel, support.EXECUTOR + "Evaluate", b"\xff\xff\xff", []
        )
        tally.case("garbage payload, no token", outcome.brief(), refused(outcome))
        for name, spelling in ACCEPTED:
            metadata = [("authorization", spelling.format(token=token))]
            outcome = support.grpc_call(
                channel, support.EXECUTOR + "Evaluate", request, metadata
            )
            ok = outcome.status == grpc.StatusCode.OK and outcome.reply == b"\n\x0242"
            tally.case(f"Evaluate {name}", outcome.brief(), ok)
        # Open by design: health and reflection, with no token and with a wrong one.
        for name, metadata in [
            ("no token", []),
            ("wrong token", [("authorization", "Bearer nope")]),
        ]:
            outcome = support.grpc_call(
                channel, "/grpc.health.v1.Health/Check", b"", metadata
            )
            serving = outcome.reply == b"\x08\x01"  # status: SERVING
            tally.case(f"open health check, {name}", outcome.brief(), serving)
        listing = _reflection_lists_services(channel)
        tally.case("open reflection, no token", listing, "Executor" in listing)


def _reflection_lists_services(channel: grpc.Channel) -> str:
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    try:
        for reply in stub.ServerReflectionInfo(iter([request]), timeout=10):
            return ", ".join(s.name for s in reply.list_services_response.service)
    except grpc.RpcError as exc:
        return f"error {exc}"
    return "no reply"


def _pipe_backend_cases(
    tally: support.Tally, backend: support.FuzzBackend, foreign_token: str
) -> None:
    token = backend.token
    path = backend.socket_path

    # hello's token: absent, of the wrong type, or a near miss.
    hellos: list[tuple[str, dict[str, object]]] = [
        ("no params", {}),
        ("no token", {"params": {}}),
        ("token null", {"params": {"token": None}}),
        ("token a number", {"params": {"token": 12345}}),
        ("token a list", {"params": {"token": [token]}}),
        ("token an object", {"params": {"token": {"token": token}}}),
    ]
    for name, credentials in near_misses(token):
        if credentials is not None and credentials.startswith("Bearer "):
            hellos.append((name, {"params": {"token": credentials[len("Bearer ") :]}}))
    hellos += [
        ("the HTTP header as the token", {"params": {"token": f"Bearer {token}"}}),
        ("trailing space", {"params": {"token": f"{token} "}}),
        ("trailing newline", {"params": {"token": f"{token}\n"}}),
        ("leading space", {"params": {"token": f" {token}"}}),
        ("NUL appended", {"params": {"token": f"{token}\x00"}}),
        ("lone surrogate", {"params": {"token": "\ud800"}}),
        ("token + lone surrogate", {"params": {"token": f"{token}\udfff"}}),
        ("another surface's token", {"params": {"token": foreign_token}}),
    ]

    def refused_and_closed(frame: dict[str, object]) -> tuple[str, bool]:
        with support.pipe_wire(path) as wire:
            wire.request(frame)
            answer = wire.reply()
            code = (answer or {}).get("error", {}).get("code") if answer else None
            closed = wire.closed_by_server()
        got = f"{code or 'no reply'}{', closed' if closed else ', left open'}"
        ok = (
            answer is not None
            and answer.get("id") == frame["id"]
            and code == "unauthorized"
            and closed
        )
        return got, ok

    for name, extra in hellos:
        got, ok = refused_and_closed({"id": 1, "type": "hello", **extra})
        tally.case(f"hello {name}", got, ok)
    # A request before hello is refused, and nothing sent after it runs.
    for kind, params in [
        ("eval", {"expression": "1"}),
        ("exec", {"code": "open('/tmp/ran', 'w')"}),
        ("session.list", {}),
        ("object.create", {"target": "collections.Counter"}),
    ]:
        got, ok = refused_and_closed({"id": 7, "type": kind, "params": params})
        tally.case(f"{kind} before hello", got, ok)
    # A wrong hello after a good one closes the connection too.
    with support.pipe_wire(path, token) as wire:
        wire.request({"id": 2, "type": "hello", "params": {"token": token[:-1]}})
        answer = wire.reply()
        code = (answer or {}).get("error", {}).get("code") if answer else None
        closed = wire.closed_by_server()
        tally.case(
            "second hello with a wrong token",
            f"{code}{', closed' if closed else ', left open'}",
            code == "unauthorized" and closed,
        )
    # Open by design: ping before hello.
    with support.pipe_wire(path) as wire:
        wire.request({"id": 3, "type": "ping"})
        answer = wire.reply()
        tally.case(
            "open ping before hello",
            str((answer or {}).get("result")),
            bool(answer and answer.get("result", {}).get("pong")),
        )
    # The right token still works, and nothing refused ran.
    with support.pipe_wire(path, token) as wire:
        wire.request(
            {
                "id": 4,
                "type": "eval",
                "params": {"expression": "__import__('os').path.exists('/tmp/ran')"},
            }
        )
        answer = wire.reply()
        tally.case(
            "right token afterwards; the refused exec never ran",
            str((answer or {}).get("result")),
            answer == {"id": 4, "result": {"value": False}},
        )


@pytest.mark.parametrize(
    ("kind", "surface", "transport", "cases"),
    [
        pytest.param("http", "http backend", "http", _http_backend_cases, id="http"),
        pytest.param("rpc", "gRPC backend", "grpc", _grpc_backend_cases, id="grpc"),
        pytest.param("pipe", "pipe backend", "pipe", _pipe_backend_cases, id="pipe"),
    ],
)
def test_backend(
    api: ControllerClient,
    fuzz_backends: dict[str, support.FuzzBackend],
    token_controller: support.TokenController,
    kind: str,
    surface: str,
    transport: str,
    cases: Callable[[support.Tally, support.FuzzBackend, str], None],
) -> None:
    """The backend's cases, with the controller's token as another surface's; then
    the backend is still ready, never restarted."""
    backend = fuzz_backends[kind]
    tally = support.Tally(AREA, surface, transport)
    cases(tally, backend, token_controller.token)
    tally.backend_afterwards(api, backend)
    assert not tally.problems, "\n".join(tally.problems)

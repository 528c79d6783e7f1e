"""Every fenced example in README.md and docs/**/*.md is run, or listed here with why not.

A block is known by its file and its first line (``Block.key``). Each one is either
- run by this module against a compose system that ``scripts/up`` brings up (``RUN``):
  bash through ``bash -euo pipefail``, one logical command at a time in one shell
  state, with the doc's placeholders filled in (``<id>``: the backend id an earlier
  command printed; ``NAME=...``: that variable's value), python with the system's
  tokens and controller URL in the environment; each ``print(...)  # value`` of a
  python block must print that value;
- or listed in the reviewed tables ``BY_LANGUAGE`` and ``NOT_RUN``: blocks that are not
  commands (output samples, wire frames, configuration), that another named test runs,
  or that need what CI lacks (a cluster, a registry).
``test_every_block_is_run_or_listed`` fails on a block that is neither, and on an entry
that names no block any more.

The docs speak of the default ports (8600, 5678, 50051); the system here runs on free
ones (a developer's own system stays untouched), so those addresses are rewritten to
it. The environments use small PyPI packages whose wheels the other e2e tests pool.
"""

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

import beephost_client
from beephost_client import BeepHostError, Timeout
from tests.e2e.compose_system import REPO, Compose, compose_system
from tests.e2e.processes import run_captured
from tests.ports import free_port
from tests.unit.chart.render import KUBE_VERSIONS, find, render

DOC_FILES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
_FENCE = re.compile(r"^(\s*)(```|~~~)\s*([\w+-]*)\s*$")
_BACKEND_ID = re.compile(r"\bb-[0-9a-f]{12}\b")
_ELLIPSIS_ASSIGNMENT = re.compile(r"^(export\s+)?([A-Z_][A-Z0-9_]*)=\.\.\.(?=\s|$)")
_PRINT_COMMENT = re.compile(r"^\s*print\(.*\)\s+#\s(.+)$")


@dataclass(frozen=True)
class Block:
    path: str  # relative to the repository
    line: int
    language: str
    text: str

    @property
    def key(self) -> tuple[str, str]:
        first = next((ln.strip() for ln in self.text.splitlines() if ln.strip()), "")
        return self.path, first


def doc_blocks() -> list[Block]:
    blocks = []
    for path in DOC_FILES:
        lines = path.read_text().splitlines()
        opened: tuple[int, str, str] | None = None
        body: list[str] = []
        for number, line in enumerate(lines, 1):
            fence = _FENCE.match(line)
            if opened is None:
                if fence:
                    opened, body = (number, fence[2], fence[3]), []
            elif fence and fence[2] == opened[1] and not fence[3]:
                relative = str(path.relative_to(REPO))
                blocks.append(Block(relative, opened[0], opened[2], "\n".join(body)))
                opened = None
            else:
                body.append(line)
        assert opened is None, f"{path}:{opened and opened[0]}: unclosed fence"
    return blocks


# -- the reviewed tables ---------------------------------------------------------------

#: (file, language) -> why no block of that language in that file is run here.
BY_LANGUAGE: dict[tuple[str, str], str] = {
    ("README.md", ""): "the architecture diagram",
    ("docs/users/cli.md", ""): "the command synopsis",
    ("docs/users/cli.md", "console"): (
        "transcripts (commands with sample ids and a 3.13 runtime, and their output); "
        "each command is run by tests/integration/cli (test_cli.py: init, runtimes, "
        "venv, jobs; test_code.py: eval and exec) or tests/e2e/test_cli_backends.py "
        "(start, status, logs, connection, stop, config, cp, ls, install, venv "
        "delete, venv pool, prune); test_files.py there: cp and ls; "
        "test_egress_cli.py: --allow, --secret, the refusals and secret set, list "
        "and rm; test_mcp.py there: mcp --client-config, and the server the block "
        "starts"
    ),
    ("docs/users/api.md", "text"): "the exception tree",
    ("docs/users/mcp.md", "json"): (
        "a desktop client's configuration: tests/integration/mcp/test_doc.py starts "
        "the server it describes"
    ),
    ("docs/users/mcp.md", "python"): (
        "each block prints what its comments say: the stdio ones (the MCP SDK's "
        "client, openai-agents, pydantic-ai) against a backend process in "
        "tests/integration/mcp/test_doc.py, the streamable HTTP ones against the "
        "server and a controller's pool in tests/e2e/test_mcp.py "
        "(test_the_doc_http_blocks_run); test_doc.py checks each block is one of them"
    ),
    ("docs/users/mcp.md", "console"): (
        "the HTTP server's variables: tests/e2e/test_mcp.py starts it with them "
        "(tests/e2e/mcp_server.py), and brings compose's up with the mcp profile "
        "(the compose_mcp fixture)"
    ),
    ("docs/users/mcp.md", "text"): (
        "LangChain's MCP adapters cannot be installed beside mcp 2.x: "
        "langchain-mcp-adapters 0.3.2 requires mcp<2.0.0,>=1.24.0, and 0.1.0 to 0.3.1 "
        "(no cap on mcp) fail at import on mcp 2.3 (mcp.server.fastmcp, "
        "mcp.shared.context.RequestContext, streamablehttp_client are gone)"
    ),
    ("docs/users/code-interpreter.md", "python"): (
        "needs an environment with matplotlib and pandas: "
        "tests/e2e/test_rich_outputs.py::test_code_interpreter_page_runs runs them"
    ),
    ("docs/users/code-interpreter.md", "text"): (
        "a fragment of an app's handler (a ControllerClient and a backend from "
        "elsewhere): tests/e2e/test_packages.py runs install and wait_job"
    ),
    ("docs/users/code-interpreter.md", "console"): (
        "venv create and start, as in cli.md: tests/integration/cli and "
        "tests/e2e/test_cli_backends.py run those commands"
    ),
    ("docs/protocol/pipe.md", "json"): (
        "wire frames: replayed against a real pipe backend by "
        "tests/integration/test_protocol_docs.py"
    ),
    ("docs/protocol/pipe.md", "text"): (
        "the exchange diagram and raw frames of the transcript "
        "(tests/integration/test_protocol_docs.py)"
    ),
    ("docs/protocol/http.md", "http"): "HTTP requests and replies on the wire: samples",
    ("docs/protocol/http.md", "json"): "reply bodies: output samples",
    ("docs/protocol/http.md", "text"): "output samples",
    ("docs/protocol/rpc.md", "text"): "gRPC messages and metadata: output samples",
    ("docs/protocol/errors.md", "text"): "an error object: an output sample",
    ("docs/operators/metrics.md", "promql"): "PromQL for dashboards and alerts",
    **{
        ("docs/operators/egress.md", language): (
            "run in order by tests/integration/controller/test_egress_doc.py against "
            "an in-process controller (in-memory containers under the Docker plan): "
            "each policy is created or gets the error shown "
            "after it, each beep-host command and HTTP request succeeds, the python "
            "prints what its comments say"
        )
        for language in ("json", "bash", "http", "python")
    },
    ("docs/operators/egress.md", "text"): (
        "the enforcement diagram, and the proxy's command line (the fixture of "
        "tests/integration/egress/test_proxy.py runs it with test paths)"
    ),
    ("docs/operators/kubernetes.md", "text"): (
        "a pod firewall's ruleset: tests/unit/controller/test_kube_firewall.py holds "
        "it equal to kube_firewall.ruleset(5678), and tests/cluster/test_kube_engine.py "
        "checks what it refuses from inside pods"
    ),
    ("docs/operators/compose.md", "yaml"): "compose configuration (an override file)",
    ("docs/architecture.md", "text"): "the layer diagrams",
    ("docs/architecture.md", "mermaid"): "sequence diagrams, rendered by GitHub",
}

_CLUSTER = (
    "needs a Kubernetes cluster, which CI lacks: the values blocks of helm.md are "
    "rendered offline here, and tests/unit/chart renders the chart (helm_python) and "
    "validates it against the Kubernetes schemas"
)
_REGISTRY = "needs a registry or a second machine, which CI lacks"

#: (file, first line) -> why that block is not run here.
NOT_RUN: dict[tuple[str, str], str] = {
    (
        "docs/operators/test-cluster.md",
        "scripts/k8s-testbed install   # Debian packages, the source, a patched build"
        " (cached), the pause image",
    ): (
        "scripts/test's cluster tier runs exactly these steps (install, up, the "
        "tests/cluster tier, down in a trap), as CI's last tier"
    ),
    (
        "README.md",
        "scripts/up      # build the images offline and bring the system up"
        " with docker compose, healthy",
    ): (
        "scripts/up is what this module's system (tests/e2e/compose_system.py) runs; "
        "scripts/test is CI's own command (.ci/run)"
    ),
    (
        "README.md",
        "# pipe backend: NDJSON over a Unix socket (settings BEEPHOST_PIPE_BACKEND_*)",
    ): (
        "long-running servers on the default ports; tests/integration starts each "
        "entry point (e.g. test_protocol_docs.py, beephost-pipe-backend) and "
        "tests/e2e/controller_process.py the controller"
    ),
    (
        "README.md",
        "scripts/build-base-image --python 3.11 --python 3.13   # pinned"
        " CPython from Debian (or a registry digest)",
    ): (
        "scripts/up runs build-images (backends and controller); test_compose.py's "
        "monitoring profile runs build-prometheus-image; tests/e2e/test_base_images.py "
        "builds base images"
    ),
    (
        "docs/operators/compose.md",
        "scripts/up                               #"
        " controller + pipe, http and rpc backends",
    ): (
        "tests/e2e/test_compose.py: scripts/up with the monitoring profile, "
        "then `down -v` (test_down_leaves_nothing)"
    ),
    (
        "docs/operators/compose.md",
        "sudo docker volume inspect beephost_pipe-socket --format '{{ .Mountpoint }}'",
    ): (
        "the default project's volume; test_compose.py's "
        "test_the_default_backends_answer_from_the_host does it for its project"
    ),
    ("docs/operators/compose.md", "git pull"): "an upgrade of a checkout",
    (
        "docs/operators/compose.md",
        'export BEEPHOST_SOCKET_ROOT="$PWD/.beephost/sockets"',
    ): (
        "what scripts/up does (it computes the same variables); "
        "test_compose.py's test_scripts_up_follows_a_rotated_token checks the digests"
    ),
    (
        "docs/operators/images.md",
        "scripts/build-base-image                          # 3.11 and 3.13",
    ): "base images: tests/e2e/test_base_images.py",
    (
        "docs/operators/images.md",
        "scripts/build-images --python 3.11                 #"
        " base + the three backends + servers",
    ): ("scripts/up runs the first two; tests/e2e/test_backend_images.py the rest"),
    (
        "docs/operators/images.md",
        "docker save -o beephost-images.tar beephost/python:3.11 \\",
    ): _REGISTRY,
    ("docs/operators/images.md", "prefix=registry.example.com/beephost"): _REGISTRY,
    ("docs/operators/images.md", "DOCKER_BUILDKIT=0 docker build --network=none \\"): (
        "a Prometheus base image by digest from a registry; "
        "tests/e2e/test_prometheus_image.py builds the image from Debian's package"
    ),
    (
        "docs/operators/helm.md",
        "helm install beephost charts/beephost -n beephost"
        " --create-namespace -f my-values.yaml",
    ): _CLUSTER,
    (
        "docs/operators/helm.md",
        "scripts/build-images --python 3.11           #"
        " beephost/{http,pipe,rpc}-backend:3.11",
    ): _REGISTRY,
    (
        "docs/operators/helm.md",
        "kubectl -n beephost get secret beephost-tokens -o"
        " jsonpath='{.data.controller-token}' | base64 -d",
    ): _CLUSTER,
    (
        "docs/operators/helm.md",
        "sha() { printf '%s' \"$1\" | sha256sum | cut -d' ' -f1; }",
    ): _CLUSTER,
    (
        "docs/operators/helm.md",
        "helm upgrade beephost charts/beephost -n beephost -f my-values.yaml",
    ): _CLUSTER,
    (
        "docs/operators/helm.md",
        "kubectl auth can-i --list -n beephost-sandboxes --as"
        " system:serviceaccount:beephost:beephost-controller",
    ): _CLUSTER,
    ("docs/operators/helm.md", ".venv/bin/python -m pytest tests/unit/chart -q"): (
        "part of CI's unit tier (scripts/test runs tests/unit)"
    ),
    (
        "docs/architecture.md",
        "uv run pytest tests/unit tests/integration                  # minutes, no Docker",
    ): (
        "the tiers as scripts/test (CI's .ci/run) runs them; the block before it runs "
        "one package here"
    ),
    ("docs/protocol/rpc.md", "grpcurl -plaintext 127.0.0.1:50051 list"): (
        "grpcurl is no dependency; the python block after it does the same through "
        "reflection, and tests/reliability/test_tokens.py checks reflection and health"
    ),
}


@dataclass(frozen=True)
class Run:
    """How this module runs one block."""

    #: What it runs against: the compose system (``compose``), the quickstart's plain
    #: local servers (``local``, started as its sh blocks say), or nothing (``none``).
    system: str = "compose"
    #: An sh block that starts a long-running server: the ``local_servers`` fixture
    #: starts it, and its test checks that the server answers.
    server: str = ""
    #: Text replaced before running (after the addresses); in a replacement
    #: ``{env_file}`` is the system's env file (the docs' ``.env``) and ``{HTTP_TOKEN}``
    #: (``PIPE``, ``RPC``, ``CONTROLLER``) the system's tokens.
    replace: dict[str, str] = field(default_factory=dict)
    #: Python run before a fragment that uses names defined elsewhere in its doc.
    prelude: str = ""
    #: Files written into the working directory first.
    files: dict[str, str] = field(default_factory=dict)
    #: Run from the checkout (``uv run``) instead of an empty directory.
    in_checkout: bool = False


#: A fragment's ``client``: the compose system's HTTP backend.
_COMPOSE_CLIENT = (
    "import os\nimport beephost_client\nclient = beephost_client.connect("
    "'http://127.0.0.1:5678', token=os.environ['BEEPHOST_HTTP_TOKEN'])\n"
)
#: A quickstart fragment's ``client``: its local HTTP backend (no token).
_LOCAL_CLIENT = "import beephost_client\nclient = beephost_client.connect('http://127.0.0.1:5678')\n"
_QUICKSTART = "docs/users/quickstart.md"

#: (file, first line) -> how it is run.
RUN: dict[tuple[str, str], Run] = {
    ("README.md", "export BEEPHOST_CONTROLLER_TOKEN=...            # from .env"): Run(
        in_checkout=True
    ),
    ("README.md", "import os"): Run(),
    (
        "docs/users/cli.md",
        "beep-host --json venv list | jq -r '.[] |"
        ' select(.status == "ready") | .name\'',
    ): Run(files={"requirements.txt": "six==1.17.0\n"}),
    ("docs/users/cli.md", "from beephost_client import ControllerClient"): Run(
        replace={'token="..."': 'token="{CONTROLLER_TOKEN}"'}
    ),
    ("docs/users/api.md", "from beephost_client import ControllerClient"): Run(),
    ("docs/users/api.md", "import asyncio"): Run(),
    ("docs/users/api.md", "import os"): Run(),
    ("docs/users/api.md", "with client.session(ttl=600, timeout=60) as session:"): Run(
        prelude=_COMPOSE_CLIENT
    ),
    (
        "docs/operators/compose.md",
        'uv run beep-host --token "$(sed -n'
        " 's/^BEEPHOST_CONTROLLER_TOKEN=//p' .env)\" runtimes",
    ): Run(in_checkout=True, replace={"//p' .env)": "//p' {env_file})"}),
    ("docs/protocol/rpc.md", "import grpc"): Run(
        replace={"Bearer s3cret": "Bearer {RPC_TOKEN}"}
    ),
    (
        "docs/protocol/pipe.md",
        "BEEPHOST_PIPE_BACKEND_SOCKET_PATH=/run/beephost/pipe.sock"
        " beephost-pipe-backend healthcheck",
    ): Run(
        system="local", replace={"/run/beephost/pipe.sock": "/tmp/beephost/pipe.sock"}
    ),
    (
        "docs/protocol/pipe.md",
        "uv run python -m beephost_protocol.schema           # write it",
    ): Run(system="none", in_checkout=True),
    (
        "docs/architecture.md",
        "uv run pytest -q -p no:cacheprovider tests/unit/protocol    # one package of"
        " the unit tier: seconds",
    ): Run(system="none", in_checkout=True),
    # The quickstart, against the plain local servers its sh blocks start.
    (
        _QUICKSTART,
        "BEEPHOST_PIPE_BACKEND_SOCKET_PATH=/tmp/beephost/pipe.sock"
        " beephost-pipe-backend",
    ): Run(system="local", server="pipe"),
    (_QUICKSTART, "BEEPHOST_HTTP_BACKEND_PORT=5678 beephost-http-backend"): Run(
        system="local", server="http"
    ),
    (_QUICKSTART, "BEEPHOST_RPC_BACKEND_PORT=50051 beephost-rpc-backend"): Run(
        system="local", server="rpc"
    ),
    (_QUICKSTART, "import beephost_client"): Run(system="local"),
    (_QUICKSTART, "import asyncio"): Run(system="local"),
    (
        _QUICKSTART,
        'client.evaluate("x * 2", locals={"x": 21})  # 42: locals are seen'
        " by this call only",
    ): Run(system="local", prelude=_LOCAL_CLIENT),
    (_QUICKSTART, "with client.stream("): Run(system="local", prelude=_LOCAL_CLIENT),
    (
        _QUICKSTART,
        "result = client.execute(code, on_output=lambda chunk:"
        ' print(chunk.data, end=""))',
    ): Run(system="local", prelude=_LOCAL_CLIENT + "code = 'print(6 * 7)'\n"),
    (
        _QUICKSTART,
        "with client.session(ttl=300) as session:  # expires after 300 idle seconds",
    ): Run(system="local", prelude=_LOCAL_CLIENT),
    (_QUICKSTART, "with client.session() as session:"): Run(
        system="local", prelude=_LOCAL_CLIENT
    ),
    (
        _QUICKSTART,
        'client.files.write("data/in.csv", "a,b\\n1,2\\n")  # bytes, str, a local'
        " Path or a file",
    ): Run(system="local", prelude=_LOCAL_CLIENT),
    (
        _QUICKSTART,
        "from beephost_client import ExecutionFailed, ExecutionTimeout, Unavailable",
    ): Run(system="local", prelude=_LOCAL_CLIENT),
    (_QUICKSTART, 'client.evaluate("slow()", timeout=600)  # one call'): Run(
        system="local",
        prelude=_LOCAL_CLIENT
        + "client.execute('def slow():\\n    return 1')\n"
        + "url = 'http://127.0.0.1:5678'\nfrom beephost_client import Timeout\n",
    ),
    (_QUICKSTART, "from beephost_client import Client, MockTransport"): Run(
        system="none"
    ),
    # Helm values: rendered offline (no cluster in CI) and validated.
    ("docs/operators/helm.md", "global:"): Run(
        system="none", replace={"sha256:...": "sha256:" + "5e" * 32}
    ),
    ("docs/operators/helm.md", "httpBackend:"): Run(system="none"),
    ("docs/operators/helm.md", "controller:"): Run(system="none"),
    ("docs/operators/helm.md", "pipeBackend:"): Run(system="none"),
    ("docs/operators/helm.md", "sandboxes:"): Run(system="none"),
    ("docs/operators/helm.md", "mcp:"): Run(system="none"),
}


def test_every_block_is_run_or_listed() -> None:
    blocks = doc_blocks()
    unlisted = [
        f"{b.path}:{b.line} ```{b.language}: {b.key[1]!r}"
        for b in blocks
        if b.key not in RUN
        and b.key not in NOT_RUN
        and (b.path, b.language) not in BY_LANGUAGE
    ]
    assert unlisted == [], (
        "run these blocks, or list them with a reason:\n" + "\n".join(unlisted)
    )
    keys = {b.key for b in blocks}
    languages = {(b.path, b.language) for b in blocks}
    stale = [k for k in (*RUN, *NOT_RUN) if k not in keys]
    stale += [k for k in BY_LANGUAGE if k not in languages]
    assert stale == [], f"entries that name no block: {stale}"
    assert not set(RUN) & set(NOT_RUN), "a block is either run or listed"


def test_the_parser_sees_every_fence() -> None:
    # Each fence line opens or closes a block: twice the blocks, in every file.
    blocks = doc_blocks()
    for path in DOC_FILES:
        fences = sum(1 for ln in path.read_text().splitlines() if _FENCE.match(ln))
        relative = str(path.relative_to(REPO))
        assert fences == 2 * sum(b.path == relative for b in blocks), relative


# -- running them ----------------------------------------------------------------------


def _logical_lines(text: str) -> list[str]:
    """Commands of a shell block: continuation lines joined, blank lines dropped."""
    commands: list[str] = []
    pending = ""
    for line in text.splitlines():
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        command = pending + line
        pending = ""
        if command.strip() and not command.strip().startswith("#"):
            commands.append(command)
    return commands


@dataclass
class LocalServers:
    """The quickstart's plain local backends (no token), started as its sh blocks say."""

    pipe: Path
    http: int
    rpc: int


@dataclass
class DocRunner:
    workdir: Path
    env: dict[str, str]
    compose: Compose | None = None
    local: LocalServers | None = None
    #: What every command printed so far (placeholders are filled from it).
    transcript: list[str] = field(default_factory=list)

    def addresses(self, text: str) -> str:
        """The docs' default addresses, as the system in use has them."""
        if self.local is not None:
            text = text.replace("/tmp/beephost/pipe.sock", str(self.local.pipe))
            for default, port in (("5678", self.local.http), ("50051", self.local.rpc)):
                text = text.replace(f"127.0.0.1:{default}", f"127.0.0.1:{port}")
                text = text.replace(f"_PORT={default} ", f"_PORT={port} ")
        if self.compose is not None:
            for default, name in (
                ("8600", "CONTROLLER"),
                ("5678", "HTTP"),
                ("50051", "RPC"),
            ):
                port = self.compose.port(name)
                text = text.replace(f"127.0.0.1:{default}", f"127.0.0.1:{port}")
        return text

    def prepare(self, text: str, run: Run) -> str:
        for name, content in run.files.items():
            (self.workdir / name).write_text(content)
        values: dict[str, str] = {}
        if self.compose is not None:
            values["{env_file}"] = str(self.compose.env_file)
            for name, token in self.compose.tokens.items():
                values[f"{{{name}_TOKEN}}"] = token
        for old, new in run.replace.items():
            for placeholder, value in values.items():
                new = new.replace(placeholder, value)
            text = text.replace(old, new)
        return self.addresses(text)

    def fill(self, command: str) -> str:
        if "<id>" in command:
            ids = _BACKEND_ID.findall("\n".join(self.transcript))
            assert ids, f"no backend id printed before {command!r}"
            command = command.replace("<id>", ids[-1])
        if found := _ELLIPSIS_ASSIGNMENT.match(command):
            value = self.env[found[2]]
            command = command[: found.end() - 3] + f"'{value}'" + command[found.end() :]
        return command

    def bash(self, block: Block, run: Run) -> None:
        cwd = REPO if run.in_checkout else self.workdir
        state = self.workdir / ".shell-state"
        for command in _logical_lines(self.prepare(block.text, run)):
            filled = self.fill(command)
            # `set -a`: the block's variables reach its next commands (one shell state).
            script = f"set -a\n{filled}\nenv -0 > {state}\n"
            result = run_captured(
                ["bash", "-euo", "pipefail", "-c", script],
                timeout=900,
                env=self.env,
                cwd=cwd,
            )
            self.transcript += [result.stdout, result.stderr]
            assert result.returncode == 0, (
                f"{block.path}:{block.line}: {command!r} exited {result.returncode}:\n"
                f"{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
            )
            pairs = (item.partition("=") for item in state.read_text().split("\0"))
            self.env = {k: v for k, _, v in pairs if k}

    def python(self, block: Block, run: Run) -> None:
        code = self.prepare(run.prelude + block.text, run)
        result = run_captured(
            [sys.executable, "-c", code],
            timeout=900,
            env=self.env,
            cwd=REPO if run.in_checkout else self.workdir,
        )
        assert result.returncode == 0, (
            f"{block.path}:{block.line} failed:\n{result.stderr[-3000:]}"
        )
        # Each `print(...)  # value` printed that value, in order.
        expected = [
            m[1] for ln in block.text.splitlines() if (m := _PRINT_COMMENT.match(ln))
        ]
        printed = iter(result.stdout.splitlines())
        for value in expected:
            assert value in printed, (
                f"{block.path}:{block.line}: {value!r} not printed in order:\n"
                f"{result.stdout}"
            )


def helm_values(block: Block, run: Run) -> None:
    """A values block of helm.md renders into valid Kubernetes objects."""
    text = block.text
    for old, new in run.replace.items():
        text = text.replace(old, new)
    values = yaml.safe_load(text)
    docs = render(values)
    assert find(docs, "Deployment"), f"{block.path}:{block.line}: nothing rendered"
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, KUBE_VERSIONS[-1], strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{block.path}:{block.line}: {doc['kind']}: {exc.message}")


def _plain_env() -> dict[str, str]:
    """The test's environment without any BEEPHOST_ setting."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BEEPHOST_")}
    env["COLUMNS"] = "200"
    return env


def _answers(url: str) -> bool:
    try:
        with beephost_client.connect(url, timeout=Timeout(request=5)) as client:
            return bool(client.evaluate("1 + 1") == 2)
    except BeepHostError:
        return False


@pytest.fixture(scope="module")
def docs_system(docker_cli: str) -> Iterator[Compose]:
    with compose_system("beephost-docs") as system:
        yield system


@pytest.fixture(scope="module")
def local_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServers]:
    """The quickstart's three servers, each started by its own sh block."""
    work = tmp_path_factory.mktemp("local")
    servers = LocalServers(work / "pipe.sock", free_port(), free_port())
    runner = DocRunner(work, _plain_env(), local=servers)
    urls = {
        "pipe": f"unix://{servers.pipe}",
        "http": f"http://127.0.0.1:{servers.http}",
        "rpc": f"grpc://127.0.0.1:{servers.rpc}",
    }
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for block in doc_blocks():
            run = RUN.get(block.key)
            if run is None or not run.server:
                continue
            log = (work / f"{run.server}.log").open("wb")
            processes.append(
                subprocess.Popen(
                    ["bash", "-c", runner.prepare(block.text, run)],
                    cwd=work,
                    env=runner.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its process group ends with it
                )
            )
            log.close()
            deadline = time.monotonic() + 60
            while not _answers(urls[run.server]):
                assert processes[-1].poll() is None, (
                    work / f"{run.server}.log"
                ).read_text()[-3000:]
                assert time.monotonic() < deadline, f"{run.server} did not answer"
                time.sleep(0.2)
        yield servers
    finally:
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            process.wait(30)


def _run_blocks() -> list[Block]:
    return [b for b in doc_blocks() if b.key in RUN]


@pytest.mark.docker
@pytest.mark.parametrize("block", _run_blocks(), ids=lambda b: f"{b.path}:{b.line}")
def test_the_example_runs(
    block: Block, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    run = RUN[block.key]
    env = _plain_env()
    compose: Compose | None = None
    local: LocalServers | None = None
    if run.system == "compose":
        compose = request.getfixturevalue("docs_system")
        env["BEEPHOST_CONTROLLER_URL"] = compose.url("CONTROLLER")
        for name, token in compose.tokens.items():
            env[f"BEEPHOST_{name}_TOKEN"] = token
    elif run.system == "local":
        local = request.getfixturevalue("local_servers")
    runner = DocRunner(tmp_path, env, compose=compose, local=local)
    if run.server:
        # Started by the fixture from this very block: it answers on its address.
        assert local is not None
        url = {
            "pipe": f"unix://{local.pipe}",
            "http": f"http://127.0.0.1:{local.http}",
            "rpc": f"grpc://127.0.0.1:{local.rpc}",
        }[run.server]
        assert _answers(url), url
        return
    kinds: dict[str, Callable[[Block, Run], None]] = {
        "bash": runner.bash,
        "sh": runner.bash,
        "python": runner.python,
        "yaml": helm_values,
    }
    assert block.language in kinds, f"no runner for ```{block.language}"
    kinds[block.language](block, run)

"""The operator documentation stays true to the code.

- every ``BEEPHOST_*`` variable named in docs/operators/*.md and docs/configuration.md
  is a setting of a service (the Settings classes' ``env_prefix`` and fields), a
  variable compose.yaml or a script reads, or one the code reads by name (the CLI, the
  controller's log level);
- every metric named in docs/operators/metrics.md is exposed by a service, with the
  type and labels its table row says, and every metric the services register has a row;
- every relative link in docs/index.md, docs/operators/*.md and docs/configuration.md
  points at a file that exists (and at a heading that exists, for a Markdown file with
  an anchor).
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase
from pydantic_settings import BaseSettings

from beephost_controller.kube_settings import KubernetesSettings
from beephost_controller.metrics import ControllerMetrics
from beephost_controller.settings import Settings as ControllerSettings
from beephost_core import Executor
from beephost_core.envsettings import EnvSettings
from beephost_core.metrics import CoreMetrics
from beephost_core.tallies import Counter, Histogram
from beephost_http_backend.settings import Settings as HttpSettings
from beephost_http_backend.state import HttpMetrics
from beephost_mcp.settings import Settings as McpSettings
from beephost_pipe_backend.server import PipeServer
from beephost_pipe_backend.settings import Settings as PipeSettings
from beephost_rpc_backend.servicer import ExecutorServicer
from beephost_rpc_backend.settings import Settings as RpcSettings

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
#: The pages for operators: docs/operators/ and the configuration page (its prose).
OPERATOR_DOCS = [*sorted((DOCS / "operators").glob("*.md")), DOCS / "configuration.md"]
METRICS_DOC = DOCS / "operators" / "metrics.md"
# The controller's are pydantic-settings', the backends' our lighter EnvSettings.
SETTINGS_CLASSES: tuple[type[BaseSettings] | type[EnvSettings], ...] = (
    ControllerSettings,
    KubernetesSettings,
    PipeSettings,
    HttpSettings,
    RpcSettings,
    McpSettings,
)
#: Files whose ``$VAR`` / ``${VAR...}`` references are variables an operator may set.
VARIABLE_FILES = (
    "compose.yaml",
    "scripts/up",
    "scripts/build-images",
    "scripts/build-base-image",
    "scripts/build-prometheus-image",
    "scripts/k8s-testbed",
    "scripts/test",
)

_DOC_VARIABLE = re.compile(r"\bBEEPHOST_[A-Z0-9_]*")
_SHELL_REFERENCE = re.compile(r"\$\{?(BEEPHOST_[A-Z0-9_]+)")
_PYTHON_LITERAL = re.compile(r"""["'](BEEPHOST_[A-Z0-9_]+)["']""")
# A metric name: not part of a path, a module or a longer word.
_DOC_METRIC = re.compile(r"(?<![\w./-])(beephost_[a-z0-9_]+)(?![\w/]|\.\w)")
_LINK = re.compile(r"\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")

#: The series prometheus_client exposes per metric type, the first one the row names.
SUFFIXES: dict[str, tuple[str, ...]] = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
}


# -- variables ------------------------------------------------------------------------


def _setting_names() -> set[str]:
    names = set()
    for settings in SETTINGS_CLASSES:
        prefix = settings.model_config.get("env_prefix") or ""
        assert prefix.startswith("BEEPHOST_"), settings
        names |= {f"{prefix}{field.upper()}" for field in settings.model_fields}
    return names


def _script_names() -> set[str]:
    names: set[str] = set()
    for relative in VARIABLE_FILES:
        names |= set(_SHELL_REFERENCE.findall((ROOT / relative).read_text()))
    return names


def _code_names() -> set[str]:
    """Variable names the services and packages spell out as a whole string."""
    names: set[str] = set()
    # The cluster tier's fixtures read what scripts/k8s-testbed's env file exports.
    for pattern in (
        "packages/*/src/**/*.py",
        "services/*/src/**/*.py",
        "tests/cluster/conftest.py",
    ):
        for path in ROOT.glob(pattern):
            names |= set(_PYTHON_LITERAL.findall(path.read_text()))
    return names


def test_settings_are_collected() -> None:
    names = _setting_names()
    # One of each service, so an empty or mis-prefixed class cannot pass unnoticed.
    assert {
        "BEEPHOST_CONTROLLER_BASE_IMAGE_REGISTRY",
        "BEEPHOST_PIPE_BACKEND_METRICS_PORT",
        "BEEPHOST_HTTP_BACKEND_TOKEN",
        "BEEPHOST_RPC_BACKEND_METRICS_PORT",
    } <= names
    assert {"BEEPHOST_PIPE_TOKEN", "BEEPHOST_SOCKET_ROOT"} <= _script_names()


@pytest.mark.parametrize("doc", OPERATOR_DOCS, ids=lambda path: path.name)
def test_every_variable_named_exists(doc: Path) -> None:
    known = _setting_names() | _script_names() | _code_names()
    unknown = set()
    for name in set(_DOC_VARIABLE.findall(doc.read_text())):
        if name.endswith("_"):  # a prefix: BEEPHOST_CONTROLLER_*, BEEPHOST_<TYPE>_...
            if not any(other.startswith(name) for other in known):
                unknown.add(name + "*")
        elif name not in known:
            unknown.add(name)
    assert not unknown, f"{doc.name} names variables nothing reads: {sorted(unknown)}"


# -- metrics --------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One row of a metrics table: the series it names, its type and labels."""

    series: str
    type: str
    labels: frozenset[str]


@dataclass
class Exposed:
    """What the services register, with every labelled metric given one child."""

    types: dict[str, str]  # family name -> counter | gauge | histogram
    series: set[str]  # every sample name
    labels: dict[str, frozenset[str]]  # family name -> label names (le left out)
    refused: dict[str, str]  # family name -> why the documented labels do not fit


def _rows() -> list[Row]:
    rows = []
    for line in METRICS_DOC.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not line.startswith("| `beephost_") or len(cells) < 4:
            continue
        series = re.findall(r"`([^`]+)`", cells[0])[0]
        labels = frozenset(re.findall(r"`([^`]+)`", cells[2]))
        assert labels or cells[2] == "none", line
        rows.append(Row(series, cells[1], labels))
    return rows


def _family_of(series: str, types: dict[str, str]) -> str | None:
    for family, kind in types.items():
        if any(series == family + suffix for suffix in SUFFIXES[kind]):
            return family
    return None


def _families(registries: Iterable[CollectorRegistry]) -> dict[str, str]:
    return {metric.name: metric.type for r in registries for metric in r.collect()}


@pytest.fixture(scope="module")
def exposed() -> Exposed:
    """Every service's registry, built the way the services build them."""
    controller = ControllerMetrics()
    controller.track_relays(dict)  # read from the engine at each scrape (system.py)
    pipe_core, http_core, rpc_core = (
        CoreMetrics("pipe"),
        CoreMetrics("http"),
        CoreMetrics("grpc"),
    )
    pipe_settings = PipeSettings()
    pipe = PipeServer(
        pipe_settings, Executor(pipe_settings.executor_config(), pipe_core)
    )
    http = HttpMetrics(http_core.tallies)
    rpc = ExecutorServicer(
        Executor(RpcSettings().executor_config(), rpc_core), 30.0, rpc_core.tallies
    )
    for core in (pipe_core, http_core, rpc_core):
        core.observe("eval", "ok", 0.001)  # folded at scrape time: no samples before
    registries = (
        controller.registry,
        pipe_core.registry,
        http_core.registry,
        rpc_core.registry,
    )
    types = _families(registries)
    # A labelled metric has no samples until a child exists: make one, with the labels
    # the documentation gives it (prometheus_client refuses names it was not given).
    documented = {_family_of(row.series, types): row for row in _rows()}
    refused: dict[str, str] = {}
    holders: tuple[object, ...] = (
        controller,
        pipe_core,
        pipe,
        http_core,
        http,
        rpc_core,
        rpc,
    )
    for holder in holders:
        for value in vars(holder).values():
            if isinstance(value, MetricWrapperBase):
                (family,) = (metric.name for metric in value.describe())
            elif isinstance(value, Counter | Histogram):  # the backends' (tallies)
                family = value.name
            else:
                continue
            row = documented.get(family)
            if row is not None and row.labels:
                try:
                    value.labels(**dict.fromkeys(row.labels, "x"))
                except ValueError as exc:
                    refused[family] = str(exc)
    series: set[str] = set()
    labels: dict[str, set[str]] = {}
    for registry in registries:
        for metric in registry.collect():
            found = labels.setdefault(metric.name, set())
            for sample in metric.samples:
                series.add(sample.name)
                found |= set(sample.labels) - {"le"}
    return Exposed(types, series, {k: frozenset(v) for k, v in labels.items()}, refused)


def test_every_metric_has_a_row(exposed: Exposed) -> None:
    rows = {row.series for row in _rows()}
    missing = sorted(
        family + SUFFIXES[kind][0]
        for family, kind in exposed.types.items()
        if family + SUFFIXES[kind][0] not in rows
    )
    assert not missing, f"registered but not in metrics.md: {missing}"


def test_every_row_is_a_metric_of_its_type_and_labels(exposed: Exposed) -> None:
    rows = _rows()
    assert len(rows) == len({row.series for row in rows}), "a metric has two rows"
    for row in rows:
        family = _family_of(row.series, exposed.types)
        assert family is not None, f"{row.series} is not registered by any service"
        kind = exposed.types[family]
        assert row.series == family + SUFFIXES[kind][0], row
        assert row.type == kind, f"{row.series} is a {kind}, not a {row.type}"
        if family in exposed.refused:
            pytest.fail(
                f"{row.series}: not the labels {sorted(row.labels)}: "
                f"{exposed.refused[family]}"
            )
        assert row.labels == exposed.labels[family], (
            f"{row.series}: labels {sorted(exposed.labels[family])}, "
            f"documented {sorted(row.labels)}"
        )


def test_every_metric_name_in_the_page_is_exposed(exposed: Exposed) -> None:
    named = set(_DOC_METRIC.findall(METRICS_DOC.read_text()))
    assert named, "no metric names found in metrics.md"
    # A metric whose documented labels were refused has no samples; its row fails.
    unknown = sorted(
        name
        for name in named - exposed.series
        if _family_of(name, exposed.types) not in exposed.refused
    )
    assert not unknown, f"metrics.md names series no service exposes: {unknown}"


# -- links ----------------------------------------------------------------------------


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    fenced = False
    for line in path.read_text().splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        heading = _HEADING.match(line)
        if fenced or heading is None:
            continue
        slug = _slug(heading.group(1))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


@pytest.mark.parametrize(
    "doc", [DOCS / "index.md", *OPERATOR_DOCS], ids=lambda path: path.name
)
def test_relative_links_resolve(doc: Path) -> None:
    broken = []
    for target in _LINK.findall(doc.read_text()):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        path = (doc.parent / path_part).resolve() if path_part else doc
        check_anchor = bool(anchor) and path.suffix == ".md"
        if not path.exists() or (check_anchor and anchor not in _anchors(path)):
            broken.append(target)
    assert not broken, f"{doc.relative_to(ROOT)}: broken links {broken}"

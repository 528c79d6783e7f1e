"""The reliability suite's summary: what each case tried, and one table at the end.

Tests call :func:`record` for each case (or use the ``reliability_case`` fixture, which
records the test's own outcome). After the run, ``pytest_terminal_summary`` prints one
table, area | cases tried | passed | lost, and writes it as Markdown to the file named by
``BEEPHOST_RELIABILITY_REPORT`` if that is set. With ``-v`` the cases are listed too.

A row counts as passed when its outcome says so ("pass", "passed", "ok") and the test
that recorded it did not fail: the summary never claims more than pytest saw.

tests/reliability/conftest.py imports the hooks and the fixture by name, which is how
pytest registers them for the directory.
"""

import os
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPORT_VARIABLE = "BEEPHOST_RELIABILITY_REPORT"
_PASSING = frozenset({"pass", "passed", "ok"})


@dataclass
class Row:
    """One case as tried: where, over which transport, what came out, what was lost."""

    area: str
    case: str
    transport: str
    outcome: str
    lost: str = "nothing"
    nodeid: str = ""
    test_failed: bool = False

    @property
    def passed(self) -> bool:
        return self.outcome.strip().lower() in _PASSING and not self.test_failed


_ROWS: list[Row] = []


def _current_test() -> str:
    # "tests/x.py::test_y[pipe] (call)": set by pytest around every phase of a test.
    return os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" (", 1)[0]


def record(
    area: str, case: str, transport: str, outcome: str, lost: str = "nothing"
) -> None:
    """Note one case for the summary.

    Args:
        area: The suite's area, e.g. "hostile code": one line of the table.
        case: What was tried and what came back, in a few words.
        transport: "pipe", "http", "grpc" (or "-").
        outcome: "pass" when the case held, anything else (e.g. "FAIL") when not.
        lost: What the backend lost beyond the case itself; "nothing" is the goal.
    """
    _ROWS.append(Row(area, case, transport, outcome, lost, _current_test()))


def rows() -> list[Row]:
    """Every case recorded so far, in order."""
    return list(_ROWS)


@dataclass
class Case:
    """A case the ``reliability_case`` fixture records when its test ends.

    The test fills in what it learns (``case``, ``lost``); the outcome is the test's.
    """

    area: str
    case: str
    transport: str = "-"
    lost: str = "nothing"
    notes: list[str] = field(default_factory=list)


_CASES = pytest.StashKey[list[Case]]()


@pytest.fixture
def reliability_case(request: pytest.FixtureRequest) -> Case:
    """A :class:`Case` recorded as "pass" or "FAIL" from the test's outcome."""
    case = Case(area="", case=request.node.name)
    request.node.stash.setdefault(_CASES, []).append(case)
    return case


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        for row in _ROWS:
            if row.nodeid == item.nodeid:
                row.test_failed = True
    if report.when == "call" or (report.when == "setup" and not report.passed):
        for case in item.stash.get(_CASES, []):
            outcome = "pass" if report.passed else "FAIL"
            if report.skipped:  # a known hole (xfail) is not a pass either
                outcome = "XFAIL" if hasattr(report, "wasxfail") else "SKIP"
            case_text = "; ".join([case.case, *case.notes])
            _ROWS.append(
                Row(
                    case.area or "unsorted",
                    case_text,
                    case.transport,
                    outcome,
                    case.lost,
                    item.nodeid,
                    report.failed,
                )
            )
        item.stash[_CASES] = []
    return report


def table(recorded: list[Row]) -> list[tuple[str, str, str, str]]:
    """The summary's rows: area, cases tried, passed, lost (distinct losses joined)."""
    areas: dict[str, list[Row]] = {}
    for row in recorded:
        areas.setdefault(row.area, []).append(row)
    lines = []
    for area, cases in areas.items():
        losses = list(dict.fromkeys(c.lost for c in cases if c.lost != "nothing"))
        lines.append(
            (
                area,
                str(len(cases)),
                str(sum(c.passed for c in cases)),
                "; ".join(losses) or "nothing",
            )
        )
    return lines


_HEADER = ("area", "cases tried", "passed", "lost")


def markdown(lines: list[tuple[str, str, str, str]]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    out = ["| " + " | ".join(_HEADER) + " |", "|---|---:|---:|---|"]
    out += ["| " + " | ".join(cell(c) for c in line) + " |" for line in lines]
    return "\n".join(out) + "\n"


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter,
    exitstatus: int,
    config: pytest.Config,
) -> None:
    if not _ROWS:
        return
    lines = table(_ROWS)
    widths = [
        max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(_HEADER)
    ]

    def fmt(cells: tuple[str, ...]) -> str:
        return " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))

    terminalreporter.write_sep("=", "reliability summary")
    terminalreporter.write_line(fmt(_HEADER))
    terminalreporter.write_line("-+-".join("-" * w for w in widths))
    for line in lines:
        terminalreporter.write_line(fmt(line))
    if config.getoption("verbose") > 0:
        terminalreporter.write_line("")
        for row in _ROWS:
            mark = "ok" if row.passed else row.outcome.upper()
            lost = "" if row.lost == "nothing" else f" (lost: {row.lost})"
            terminalreporter.write_line(
                f"{mark:<5} {row.area} [{row.transport}] {row.case}{lost}"
            )
    target = os.environ.get(REPORT_VARIABLE)
    if target:
        Path(target).write_text(markdown(lines))
        terminalreporter.write_line(f"written to {target}")

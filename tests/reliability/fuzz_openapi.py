"""Schemathesis against a live service's OpenAPI document, bounded and deterministic.

One Hypothesis run per operation (``derandomize``: the same examples every run; phases
explicit and generate only, no shrinking), positive and negative examples mixed, each
sent to the real server and checked for: no server error (but the protocol's typed
503 and 504, see ``PROTOCOL_5XX``), a status the document lists,
a body that matches the documented schema, and the documented content type. Failures
are collected, not raised, so one run reports every operation.
"""

import collections
import json
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import requests
import schemathesis
import schemathesis.checks
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode, Response
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

#: The protocol's own 5xx answers (docs/protocol/errors.md): the deadline the client
#: set passed (504 ``timeout``), the server drains or cannot start a worker (503
#: ``unavailable``). With that error body they are answers, not server errors; the
#: status must still be documented (status_code_conformance). 500 never passes.
PROTOCOL_5XX = {503: "unavailable", 504: "timeout"}


def not_a_server_bug(ctx: Any, response: Response, case: Case[Any]) -> bool | None:
    """``not_a_server_error``, except the protocol's typed 503 and 504."""
    code = PROTOCOL_5XX.get(response.status_code)
    if code is not None:
        try:
            body = json.loads(response.content)
        except ValueError:
            body = None
        if isinstance(body, dict) and (body.get("error") or {}).get("code") == code:
            return None
    return not_a_server_error(ctx, response, case)


CHECKS = [
    not_a_server_bug,
    status_code_conformance,
    response_schema_conformance,
    content_type_conformance,
]


def all_checks() -> list[Any]:
    """Every check schemathesis registers (``--checks all``), ``not_a_server_error``
    as ``not_a_server_bug``."""
    schemathesis.checks.load_all_checks()
    registered = schemathesis.checks.CHECKS.get_all()
    return [not_a_server_bug] + [c for c in registered if c is not not_a_server_error]


ALL_MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)

#: Hypothesis settings shared by every operation: bounded, deterministic, no shrinking.
BASE_SETTINGS = hypothesis.settings(
    derandomize=True,
    database=None,
    deadline=None,
    phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    suppress_health_check=list(hypothesis.HealthCheck),
    report_multiple_bugs=False,
)


@dataclass
class OperationRun:
    """What one operation's examples got."""

    label: str
    examples: int = 0
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        codes = ", ".join(f"{s}x{n}" for s, n in sorted(self.statuses.items()))
        return f"{self.label}: {self.examples} examples ({codes}) {self.seconds:.1f} s"


@dataclass
class FuzzPlan:
    """How to fuzz one API.

    ``examples`` per operation unless ``per_operation`` names the label
    (``"POST /api/v1/backends"``); 0 skips it. Examples are positive and negative
    (valid and invalid by the document) unless ``modes`` names the label.
    ``skip(case)`` rejects a generated case before it is sent (protected names);
    ``after(case, response)`` cleans up what a case created. Both get the operation's
    label first.
    """

    base_url: str
    examples: int
    headers: Mapping[str, str] = field(default_factory=dict)
    per_operation: Mapping[str, int] = field(default_factory=dict)
    modes: Mapping[str, Sequence[GenerationMode]] = field(default_factory=dict)
    skip: Callable[[str, Case[Any]], bool] = lambda label, case: False
    after: Callable[[str, Case[Any], Response], None] = lambda *_: None
    timeout: float = 40.0
    #: The checks every response passes (``all_checks()`` for every one).
    checks: Sequence[Any] = tuple(CHECKS)
    #: Changes a generated case before it is sent (a PUT's body name to its path's).
    prepare: Callable[[str, Case[Any]], None] = lambda label, case: None
    #: Labels whose requests the document calls valid may still be refused, with a
    #: typed 400, by rules no JSON schema can say: schemathesis' positive-data check
    #: (ST202) is not applied to them; every other check is.
    semantic: Collection[str] = ()


def fuzz(spec: dict[str, Any], plan: FuzzPlan) -> list[OperationRun]:
    """Run ``plan`` against every operation of ``spec``; returns one run per operation."""
    schema = schemathesis.openapi.from_dict(spec)
    session = requests.Session()
    runs = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()
        operation = result.ok()
        label = f"{operation.method.upper()} {operation.path}"
        count = plan.per_operation.get(label, plan.examples)
        run = OperationRun(label)
        runs.append(run)
        if count == 0:
            continue
        modes = plan.modes.get(label, ALL_MODES)
        strategy = st.one_of(
            *(operation.as_strategy(generation_mode=mode) for mode in modes)
        )
        example = _examples(plan, session, run, strategy, count)
        started = time.monotonic()
        example()
        run.seconds = time.monotonic() - started
    session.close()
    return runs


def _examples(
    plan: FuzzPlan,
    session: requests.Session,
    run: OperationRun,
    strategy: st.SearchStrategy[Case[Any]],
    count: int,
) -> Callable[[], None]:
    """The Hypothesis test of one operation: send each case, check its response."""

    @hypothesis.settings(BASE_SETTINGS, max_examples=count)
    @hypothesis.given(case=strategy)
    def example(case: Case[Any]) -> None:
        if plan.skip(run.label, case):
            hypothesis.reject()
        plan.prepare(run.label, case)
        response = case.call(
            base_url=plan.base_url,
            session=session,
            headers=dict(plan.headers),
            timeout=plan.timeout,
        )
        run.examples += 1
        run.statuses[response.status_code] += 1
        checks = [
            check
            for check in plan.checks
            if not (run.label in plan.semantic and check is positive_data_acceptance)
        ]
        try:
            case.validate_response(response, checks=checks, headers=dict(plan.headers))
        except FailureGroup as exc:
            run.failures.append(f"{run.label}: {exc}")
        plan.after(run.label, case, response)

    return example

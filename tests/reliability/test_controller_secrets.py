"""The controller's token never leaves it: hostile requirements, logs, job logs.

A real ``beephost-controller`` process on the real engine, with a token, direct
references allowed for http (``BEEPHOST_CONTROLLER_REQUIREMENT_URL_SCHEMES``) and the
most verbose log level. Model code in an admin backend can create environments and read
job logs, so a requirement that names ``${BEEPHOST_CONTROLLER_TOKEN}`` must be refused
(uv would expand it and send the token to the URL), and a requirement carrying the
literal token (what the token's holder may write) must leave it in no job log, job or
environment error, or line of the controller's log (access log included), however the
token was sent: header, a second header, a ``?token=`` query.
"""

import json
from dataclasses import dataclass

import pytest

from beephost_client.controller import ControllerClient
from tests.e2e.controller_process import module_controller
from tests.ports import free_port
from tests.reliability.fuzz_support import TokenController, http_request
from tests.reliability.summary import record

pytestmark = pytest.mark.docker

AREA = "tokens"


@dataclass
class SecretsController(TokenController):
    """A token of its own (the settings below allow http direct references and DEBUG
    logging)."""

    token: str = "controller-secret-never-logged-0123456789"


secrets_controller = module_controller(
    "secrets-controller",
    {"REQUIREMENT_URL_SCHEMES": '["http"]', "LOG_LEVEL": "DEBUG"},
    kind=SecretsController,
    name="secrets_controller",
)


def test_the_token_reaches_no_requirement_job_log_or_log_line(
    secrets_controller: SecretsController,
) -> None:
    proc, token = secrets_controller, secrets_controller.token
    bearer = f"Bearer {token}"
    hostile = (
        f"x @ http://127.0.0.1:{free_port()}/${{BEEPHOST_CONTROLLER_TOKEN}}/x.tar.gz"
    )
    refused = []
    for field, value in (
        ("requirements", [hostile]),
        ("requirements_txt", f"six\n{hostile}\n"),
        (
            "requirements",
            ["six ; python_version > '3' --index-url http://127.0.0.1:1/"],
        ),
        ("requirements", ["six \\"]),
    ):
        body = json.dumps({"name": "hostile", field: value}).encode()
        answer = http_request(proc.url, "POST", "/api/v1/environments", bearer, body)
        refused.append(answer)
        assert answer.status == 400, answer
        assert answer.error_code() == "invalid_request"
        assert token not in answer.body.decode()
    assert "environment variables are never expanded" in refused[0].body.decode()
    record(
        AREA,
        "controller: ${BEEPHOST_CONTROLLER_TOKEN}, --index-url after a marker, a "
        "trailing backslash in requirements: 400 invalid_request with the reason",
        "http",
        "pass",
    )

    # The token's holder writes it literally: resolution fails with uv naming the URL.
    with ControllerClient(proc.url, token=token, timeout=30) as api:
        literal = f"x @ http://127.0.0.1:{free_port()}/{token}/x.tar.gz"
        body = json.dumps({"name": "literal", "requirements": [literal]}).encode()
        answer = http_request(proc.url, "POST", "/api/v1/environments", bearer, body)
        assert answer.status == 201, answer
        job_id = json.loads(answer.body)["job_id"]
        job = api.wait_job(job_id, timeout=300)
        assert job.status == "failed"
        environment = api.environment("literal")
        lines = [line.line for line in api.job_log(job_id).lines]
        # Requests that carry the token in other places, each logged nowhere.
        for path in (
            f"/api/v1/environments?token={token}",
            f"/api/v1/nothing?access_token={token}",
            "/api/v1/environments",
        ):
            http_request(proc.url, "GET", path, bearer)
            http_request(proc.url, "GET", path, f"Bearer {token}x")
        api.delete_environment("literal")
    seen = json.dumps([job.error, environment.error, environment.status, lines])
    assert "[redacted]" in seen, seen  # uv's error did name the URL
    assert token not in seen
    log = proc.log_path.read_text(errors="replace")
    assert "[redacted]" in log  # the failed job was logged, its URL redacted
    leaks = [line for line in log.splitlines() if token in line]
    record(
        AREA,
        f"controller: the token in a requirement's URL, a query and headers: "
        f"redacted in the job log, job and environment errors and {len(log.splitlines())} "
        f"log lines at DEBUG ({len(leaks)} leaks)",
        "http",
        "pass" if not leaks else "FAIL",
    )
    assert not leaks, leaks[:5]

"""A fake controller: the REST API's routes over dicts, served through MockControllerTransport.

Only for the CLI's output logic; the real controller is exercised in
tests/integration/cli.
"""

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from beephost_client.controller import (
    ControllerClient,
    MockControllerTransport,
    Request,
    Response,
)

Route = Callable[..., Response]


def ok(value: Any, status: int = 200) -> Response:
    return Response(
        status, {"content-type": "application/json"}, json.dumps(value).encode()
    )


def fail(http: int, code: str, message: str, /, **data: Any) -> Response:
    return ok({"error": {"code": code, "message": message, "data": data}}, http)


@dataclass
class FakeController:
    """State plus a handler; ``build_fails`` makes the next builds fail."""

    environments: dict[str, dict[str, Any]] = field(default_factory=dict)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    logs: dict[str, list[str]] = field(default_factory=dict)
    backends: dict[str, dict[str, Any]] = field(default_factory=dict)
    backend_states: list[str] = field(default_factory=lambda: ["starting", "ready"])
    build_fails: str | None = None
    backends_api: bool = True  # False: an older controller, without /api/v1/backends
    requests: list[Request] = field(default_factory=list)

    def client(
        self, url: str = "http://fake", token: str | None = None
    ) -> ControllerClient:
        return ControllerClient(url, transport=MockControllerTransport(self.handle))

    # -- helpers ---------------------------------------------------------------------

    def job(self, kind: str, target: str, lines: list[str]) -> dict[str, Any]:
        job_id = f"job-{len(self.jobs) + 1}"
        failed = self.build_fails is not None
        job = {
            "id": job_id,
            "kind": kind,
            "target": target,
            "status": "failed" if failed else "succeeded",
            "error": self.build_fails,
            "created_at": 1.0,
            "started_at": 1.0,
            "finished_at": 2.5,
        }
        self.jobs[job_id] = job
        self.logs[job_id] = lines + ([self.build_fails] if self.build_fails else [])
        return job

    def add_environment(self, name: str, **values: Any) -> dict[str, Any]:
        env = {
            "name": name,
            "python": "3.11",
            "requirements": [],
            "network": False,
            "admin": name == "admin",
            "status": "ready",
            "image": f"beephost/env:{name}",
            "error": None,
            "job_id": None,
            "created_at": 1.0,
            "updated_at": 1.0,
            **values,
        }
        self.environments[name] = env
        return env

    def _build(self, env: dict[str, Any]) -> None:
        job = self.job(
            "build",
            env["name"],
            [f"resolving for {env['name']}", "installing [extras]"],
        )
        env["job_id"] = job["id"]
        env["status"] = "pending"

    def _env_view(self, env: dict[str, Any]) -> dict[str, Any]:
        job = self.jobs.get(env["job_id"] or "")
        if (
            job and env["status"] == "pending"
        ):  # the build "ran" as soon as it was asked for
            env = {
                **env,
                "status": "ready" if job["status"] == "succeeded" else "failed",
            }
            env["error"] = job["error"]
            env["image"] = env["image"] if job["status"] == "succeeded" else None
        return env

    # -- routes ----------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        self.requests.append(request)
        path, _, query = request.path.partition("?")
        for pattern, method, route in self._routes():
            if not self.backends_api and pattern.startswith("/api/v1/backends"):
                continue
            match = re.fullmatch(pattern, path)
            if match and method == request.method:
                return route(request, *match.groups(), query=query)
        return ok({"detail": "Not Found"}, 404)

    def _routes(self) -> list[tuple[str, str, Route]]:
        return [
            (r"/api/v1/runtimes", "GET", self._runtimes),
            (r"/api/v1/runtimes/init", "POST", self._init),
            (r"/api/v1/environments", "GET", self._list_envs),
            (r"/api/v1/environments", "POST", self._create_env),
            (r"/api/v1/environments/admin", "POST", self._admin),
            (r"/api/v1/environments/([^/]+)", "PUT", self._ensure_env),
            (r"/api/v1/environments/([^/]+)", "GET", self._get_env),
            (r"/api/v1/environments/([^/]+)", "DELETE", self._delete_env),
            (r"/api/v1/jobs", "GET", self._list_jobs),
            (r"/api/v1/jobs/([^/]+)", "GET", self._get_job),
            (r"/api/v1/jobs/([^/]+)/log", "GET", self._job_log),
            (r"/api/v1/jobs/([^/]+)/log/stream", "GET", self._job_stream),
            (r"/api/v1/backends", "GET", self._list_backends),
            (r"/api/v1/backends", "POST", self._start),
            (r"/api/v1/backends/([^/]+)", "GET", self._get_backend),
            (r"/api/v1/backends/([^/]+)", "DELETE", self._stop),
            (r"/api/v1/backends/([^/]+)/logs", "GET", self._backend_logs),
            (r"/api/v1/backends/([^/]+)/connection", "GET", self._connection),
            (r"/api/v1/config", "GET", self._config),
        ]

    def _runtimes(self, request: Request, query: str) -> Response:
        initialised = any(j["kind"] == "init" for j in self.jobs.values())
        return ok(
            [
                {
                    "python": "3.11",
                    "version": "3.11.2" if initialised else None,
                    "image": "beephost/python:3.11" if initialised else None,
                    "source": "debian" if initialised else None,
                    "initialised": initialised,
                },
                {
                    "python": "3.13",
                    "version": None,
                    "image": None,
                    "source": None,
                    "initialised": False,
                },
            ]
        )

    def _init(self, request: Request, query: str) -> Response:
        python = (request.json() or {}).get("python") or "3.11"
        if python not in ("3.11", "3.13"):
            return fail(400, "invalid_request", f"no runtime {python!r}")
        job = self.job("init", python, ["importing rootfs", f"runtime {python} ready"])
        return ok({**job, "status": "queued"}, 202)

    def _list_envs(self, request: Request, query: str) -> Response:
        return ok([self._env_view(e) for e in self.environments.values()])

    def _create_env(self, request: Request, query: str) -> Response:
        body = request.json()
        if body["name"] in self.environments:
            return fail(
                409,
                "conflict",
                f"environment {body['name']!r} exists",
                environment=body["name"],
            )
        requirements = list(body.get("requirements", []))
        requirements += (body.get("requirements_txt") or "").split()
        env = self.add_environment(
            body["name"],
            requirements=sorted(requirements),
            python=body.get("python") or "3.11",
        )
        self._build(env)
        return ok(env, 201)

    def _ensure_env(self, request: Request, name: str, query: str) -> Response:
        if name in self.environments:
            return ok(self._env_view(self.environments[name]))
        return self._create_env(request, query)

    def _admin(self, request: Request, query: str) -> Response:
        if "admin" not in self.environments:
            self._build(self.add_environment("admin"))
        return ok(self.environments["admin"])

    def _get_env(self, request: Request, name: str, query: str) -> Response:
        if name not in self.environments:
            return fail(404, "not_found", f"no environment {name!r}", environment=name)
        return ok(self._env_view(self.environments[name]))

    def _delete_env(self, request: Request, name: str, query: str) -> Response:
        if name not in self.environments:
            return fail(404, "not_found", f"no environment {name!r}", environment=name)
        if any(b["environment"] == name for b in self.backends.values()):
            return fail(
                409,
                "conflict",
                f"environment {name!r} has backends; stop them first",
                environment=name,
            )
        del self.environments[name]
        return Response(204)

    def _list_jobs(self, request: Request, query: str) -> Response:
        return ok(list(self.jobs.values()))

    def _get_job(self, request: Request, job_id: str, query: str) -> Response:
        if job_id not in self.jobs:
            return fail(404, "not_found", f"no job {job_id!r}", job=job_id)
        return ok(self.jobs[job_id])

    def _job_log(self, request: Request, job_id: str, query: str) -> Response:
        after = int(dict(p.split("=") for p in query.split("&")).get("after", -1))
        lines = [
            {"seq": i, "line": line}
            for i, line in enumerate(self.logs[job_id])
            if i > after
        ]
        return ok(
            {
                "job": self.jobs[job_id],
                "lines": lines,
                "next": lines[-1]["seq"] if lines else after,
            }
        )

    def _job_stream(self, request: Request, job_id: str, query: str) -> Response:
        if job_id not in self.jobs:
            return fail(404, "not_found", f"no job {job_id!r}", job=job_id)
        items: list[dict[str, Any]] = [
            {"seq": i, "line": line} for i, line in enumerate(self.logs[job_id])
        ]
        items.append({"job": self.jobs[job_id]})
        return Response(200, {}, iter([json.dumps(i).encode() + b"\n" for i in items]))

    def _list_backends(self, request: Request, query: str) -> Response:
        return ok(
            [
                {k: v for k, v in b.items() if k != "token"}
                for b in self.backends.values()
            ]
        )

    def _start(self, request: Request, query: str) -> Response:
        body = request.json()
        name = body["environment"]
        if name not in self.environments:
            return fail(
                404, "not_found", f"no environment {name!r}"
            )  # no data: as the real one
        if self.environments[name]["status"] != "ready":
            status = self.environments[name]["status"]
            return fail(
                400,
                "invalid_request",
                f"environment {name!r} is {status}, not ready",
                environment=name,
                status=status,
            )
        backend_id = f"b{len(self.backends) + 1}"
        port = body.get("port") or 5001
        scheme = {"http": "http", "rpc": "grpc"}.get(body["type"])
        endpoint = (
            f"{scheme}://127.0.0.1:{port}"
            if scheme
            else f"unix:///run/{backend_id}.sock"
        )
        self.backends[backend_id] = {
            "id": backend_id,
            "environment": body["environment"],
            "type": body["type"],
            "status": "starting",
            "reason": None,
            "endpoint": endpoint,
            "token": body.get("token") or "s3cret",
            "container_id": "0123456789abcdef",
            "created_at": 1.0,
            "ready_at": None,
            "restarts": 0,
            "limits": body.get("limits")
            or {"memory_mb": 512, "cpus": 1.0, "pids": 256},
        }
        return ok(self.backends[backend_id], 202)

    def _get_backend(self, request: Request, backend_id: str, query: str) -> Response:
        if backend_id not in self.backends:
            return fail(
                404, "not_found", f"no backend {backend_id!r}", backend=backend_id
            )
        backend = self.backends[backend_id]
        if self.backend_states and backend["status"] not in ("stopped",):
            backend["status"] = self.backend_states.pop(0)
            if backend["status"] == "exited":
                backend["reason"] = "exit code 3"
        return ok({k: v for k, v in backend.items() if k != "token"})

    def _stop(self, request: Request, backend_id: str, query: str) -> Response:
        if backend_id not in self.backends:
            return fail(
                404, "not_found", f"no backend {backend_id!r}", backend=backend_id
            )
        del self.backends[backend_id]
        return Response(204)

    def _backend_logs(self, request: Request, backend_id: str, query: str) -> Response:
        return Response(
            200, {"content-type": "text/plain"}, b"started\nserving [http]\n"
        )

    def _connection(self, request: Request, backend_id: str, query: str) -> Response:
        backend = self.backends[backend_id]
        return ok({"url": backend["endpoint"], "token": backend["token"]})

    def _config(self, request: Request, query: str) -> Response:
        return ok({"default_python": "3.11", "pythons": ["3.11", "3.13"], "port": 8600})

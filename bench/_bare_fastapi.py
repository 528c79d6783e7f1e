"""BARE FASTAPI: the idiomatic FastAPI eval endpoint, in-process, no worker, no auth.

Usage: python bench/_bare_fastapi.py PORT

Served by the same uvicorn configuration as beephost-http-backend (uvloop, httptools,
no access log), so that the difference is what the backend adds: the request gate,
the session worker hop and its error handling.
"""

import sys
from typing import Any

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

_NAMESPACE: dict[str, Any] = {"__name__": "__main__"}


class EvalBody(BaseModel):
    expression: str


def create_app() -> FastAPI:
    app = FastAPI()

    @app.post("/api/eval")
    async def evaluate(body: EvalBody) -> dict[str, Any]:
        return {"value": eval(body.expression, _NAMESPACE)}

    @app.get("/ready")
    async def ready() -> dict[str, bool]:
        return {"ready": True}

    return app


if __name__ == "__main__":
    uvicorn.run(
        create_app(),
        host="127.0.0.1",
        port=int(sys.argv[1]),
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_config=None,
        server_header=False,
    )

"""A docs page that works without a CDN.

FastAPI's own /docs loads Swagger UI from a CDN, which many networks (and this project's
CI) cannot reach: a blank page. Here /docs is a self-contained HTML reference rendered
from the same OpenAPI document, with no scripts and nothing fetched from elsewhere
(beephost_protocol.reference_page, shared with the HTTP backend).
"""

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse

from beephost_protocol.reference_page import render_reference

router = APIRouter(include_in_schema=False)


@router.get("/docs")
def docs(request: Request) -> HTMLResponse:
    return HTMLResponse(render_reference(request.app.openapi()))

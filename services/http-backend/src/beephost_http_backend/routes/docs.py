"""The OpenAPI document and a docs page that works without a CDN.

FastAPI's own /docs loads Swagger UI from a CDN, which these machines (and many
production networks) cannot reach, leaving a blank page. Here /docs loads Swagger UI
from ``swagger_ui_url`` when one is configured (a self-hosted swagger-ui-dist), and
otherwise is a self-contained HTML reference rendered from the same OpenAPI document:
no scripts, nothing fetched from elsewhere.
"""

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.responses import HTMLResponse, JSONResponse, Response

from beephost_http_backend.deps import SettingsDep
from beephost_http_backend.routing import BackendRoute
from beephost_protocol.reference_page import render_reference

router = APIRouter(include_in_schema=False, route_class=BackendRoute)


@router.get("/openapi.json")
async def openapi(request: Request) -> Response:
    return JSONResponse(request.app.openapi())


@router.get("/docs")
async def docs(request: Request, settings: SettingsDep) -> Response:
    if settings.swagger_ui_url:
        return get_swagger_ui_html(
            openapi_url="openapi.json",
            title=f"{request.app.title} - Swagger UI",
            swagger_js_url=f"{settings.swagger_ui_url}/swagger-ui-bundle.js",
            swagger_css_url=f"{settings.swagger_ui_url}/swagger-ui.css",
            swagger_favicon_url=f"{settings.swagger_ui_url}/favicon-32x32.png",
        )
    return HTMLResponse(render_reference(request.app.openapi()))

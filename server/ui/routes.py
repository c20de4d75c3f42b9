"""`/ui` (the playground), `/ui/static/...` (its files) and `/docs` (Swagger UI), served without any CDN.

A local model server usually runs on a machine without internet: FastAPI's own /docs loads Swagger UI from a
CDN and shows a blank page there. Every script and stylesheet these pages load lives in `static/` (the vendored
ones, unmodified and with their licences, in `static/vendor/`), so a checkout and a wheel serve the same pages
with no build step.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).resolve().parent / "static"
_SWAGGER = "/ui/static/vendor/swagger-ui"

_PLAYGROUND_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src *; object-src 'none'; base-uri 'none'; frame-ancestors 'self'"
)
"""Defence in depth behind DOMPurify: the page runs only its own files and loads images only from here, so model
output can neither run a script nor make the browser call another host. `connect-src *` lets compare mode reach
a second endpoint the user configured."""

router = APIRouter(include_in_schema=False)


@router.get("/ui")
async def playground() -> FileResponse:
    return FileResponse(STATIC / "index.html", headers={"Content-Security-Policy": _PLAYGROUND_POLICY})


@router.get("/docs")
async def swagger_ui() -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="codebooga API",
        swagger_js_url=f"{_SWAGGER}/swagger-ui-bundle.js",
        swagger_css_url=f"{_SWAGGER}/swagger-ui.css",
        swagger_favicon_url=f"{_SWAGGER}/favicon-32x32.png",
    )


def install_ui(app: FastAPI) -> None:
    """Add the playground and the offline docs; the app must be built with `docs_url=None, redoc_url=None`."""
    app.include_router(router)
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="ui-static")

"""``/docs``: Swagger UI from the files installed with the package (no CDN, works offline)."""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse

ASSETS = "/docs/assets"
# Swagger UI 5 (it reads the OpenAPI 3.1 that FastAPI writes; the 4.x of swagger-ui-bundle could
# not, and showed "Unable to render this definition"), as fastapi-offline installs it.
ASSET_DIR = str(files("fastapi_offline").joinpath("static"))


router = APIRouter()


@router.get("/docs", include_in_schema=False)
def docs(request: Request) -> HTMLResponse:
    # The app from the request, not from a closure: FastAPI keeps every endpoint it has seen
    # in caches of up to 4,096 callables, and an endpoint that closed over its app kept that
    # whole app alive (in the test suite, hundreds of apps; their garbage collections took
    # seconds and stalled the requests of later tests).
    app: FastAPI = request.app
    return get_swagger_ui_html(
        openapi_url=app.openapi_url or "/openapi.json",
        title=f"{app.title} API",
        swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS}/favicon.png",
    )


def install_docs(app: FastAPI) -> None:
    app.mount(ASSETS, StaticFiles(directory=ASSET_DIR), name="swagger-ui")
    app.include_router(router)

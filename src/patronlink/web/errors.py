"""Domain errors and request validation failures as JSON a person can read."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from patronlink.domain.errors import (
    Conflict,
    NotFound,
    PatronlinkError,
    PermissionDenied,
    Unauthenticated,
    ValidationError,
)

_STATUS: list[tuple[type[PatronlinkError], int]] = [
    (ValidationError, 422),
    (NotFound, 404),
    (Conflict, 409),
    (PermissionDenied, 403),
    (Unauthenticated, 401),
]


def status_of(exc: PatronlinkError) -> int:
    for kind, status in _STATUS:
        if isinstance(exc, kind):
            return status
    return 400


def _field_name(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    return ".".join(parts) or "body"


def _for_staff(request: Request) -> bool:
    # The staff UI is read by people in a browser: its errors are pages, not JSON.
    return request.url.path == "/staff" or request.url.path.startswith("/staff/")


async def _staff_page(request: Request, status: int, message: str) -> Response:
    from patronlink.web.staff.pages import error_page

    # The page reads the session's user from the database: off the event loop.
    return await run_in_threadpool(error_page, request, status, message)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(PatronlinkError)
    async def domain_error(request: Request, exc: PatronlinkError) -> Response:
        if _for_staff(request):
            return await _staff_page(request, status_of(exc), str(exc))
        body: dict[str, Any] = {"error": str(exc)}
        field = getattr(exc, "field", None)
        if field:
            body["fields"] = [{"field": field, "message": str(exc)}]
        return JSONResponse(body, status_code=status_of(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        fields = []
        for error in exc.errors():
            loc = tuple(error.get("loc", ()))
            message = str(error.get("msg", "invalid value"))
            if error.get("type") == "json_invalid":
                message = "the body is not valid JSON"
            fields.append({"field": _field_name(loc), "message": message})
        names = ", ".join(sorted({f["field"] for f in fields}))
        if _for_staff(request):
            return await _staff_page(request, 422, f"invalid input: {names}")
        return JSONResponse(
            {"error": f"invalid request: {names}", "fields": fields}, status_code=422
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if _for_staff(request):
            return await _staff_page(request, exc.status_code, str(exc.detail))
        return JSONResponse(
            {"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers
        )

"""One place that turns errors into 4xx JSON: ``{"error": kind, "detail": one line}``."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from mtbsync.errors import ConflictError, MtbsyncError, NotFoundError

log = logging.getLogger("mtbsync")


def status_of(exc: MtbsyncError) -> int:
    """The HTTP status for a library error: 404 not found, 409 conflict, else 400."""
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, ConflictError):
        return 409
    return 400


def install_error_handlers(app: FastAPI) -> None:
    """Map `MtbsyncError`, HTTP errors and validation errors to one-line JSON."""

    @app.exception_handler(MtbsyncError)
    async def _mtbsync_error(request: Request, exc: MtbsyncError) -> JSONResponse:
        code = status_of(exc)
        log.info("%s %s -> %d: %s", request.method, request.url.path, code, exc)
        return JSONResponse({"error": type(exc).__name__, "detail": _one_line(str(exc))}, status_code=code)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        name = {401: "unauthorized", 404: "not found", 405: "method not allowed"}.get(
            exc.status_code, "error"
        )
        return JSONResponse(
            {"error": name, "detail": _one_line(str(exc.detail))},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        detail = (
            f"{where}: {first.get('msg', 'invalid request')}"
            if where
            else first.get("msg", "invalid request")
        )
        return JSONResponse({"error": "invalid request", "detail": _one_line(detail)}, status_code=422)


def _one_line(text: str) -> str:
    return " ".join(text.split())[:500]

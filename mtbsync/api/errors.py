"""One place that turns errors into JSON: ``{"error": code, "detail": one line}``, and documents them.

Every error the API answers has that shape (`ErrorOut`): library errors (`MtbsyncError`), HTTP errors
(401, 403, 404 of routes and static files, 405), validation errors (422), the guard's refusals (413,
421, in `security`) and anything unexpected (500). `error_responses` is what the routes declare so
that openapi.json lists their error statuses with that schema.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from mtbsync.api.schemas import ErrorOut
from mtbsync.errors import ConflictError, MtbsyncError, NotFoundError

log = logging.getLogger("mtbsync")

# The ``error`` code of an HTTP error (library errors use their class name, e.g. "NotFoundError").
HTTP_ERROR_CODES = {
    400: "bad request",
    401: "unauthorized",
    403: "forbidden",
    404: "not found",
    405: "method not allowed",
    409: "conflict",
    413: "too large",
    421: "wrong host",
    422: "invalid request",
    500: "internal error",
}

_DESCRIPTIONS = {
    400: "The request cannot be done (one line says why).",
    401: "A write without the token: open the URL mtbsync printed, or send 'Authorization: Bearer T'.",
    403: "A write the session cookie cannot authorize: it came from another site.",
    404: "No such run, marker, media or format.",
    405: "This path does not take this method.",
    409: "The change conflicts with the current state.",
    413: "The request body is too large.",
    421: "The Host header is not a loopback name (a loopback-bound server).",
    422: "A parameter or the body is invalid (one line names it).",
    500: "Something unexpected went wrong on the server (it is logged).",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these error statuses, each with the `ErrorOut` schema."""
    return {status: {"model": ErrorOut, "description": _DESCRIPTIONS[status]} for status in statuses}


def status_of(exc: MtbsyncError) -> int:
    """The HTTP status for a library error: 404 not found, 409 conflict, else 400."""
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, ConflictError):
        return 409
    return 400


def error_body(code: str, detail: str) -> dict[str, str]:
    """The JSON of an error answer."""
    return ErrorOut(error=code, detail=_one_line(detail)).model_dump()


def install_error_handlers(app: FastAPI) -> None:
    """Map `MtbsyncError`, HTTP errors, validation errors and unexpected ones to one-line JSON."""

    @app.exception_handler(MtbsyncError)
    async def _mtbsync_error(request: Request, exc: MtbsyncError) -> JSONResponse:
        code = status_of(exc)
        log.info("%s %s -> %d: %s", request.method, request.url.path, code, exc)
        return JSONResponse(error_body(type(exc).__name__, str(exc)), status_code=code)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = HTTP_ERROR_CODES.get(exc.status_code, "error")
        detail = str(exc.detail)
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"nothing at {request.url.path}"
        return JSONResponse(
            error_body(code, detail), status_code=exc.status_code, headers=getattr(exc, "headers", None)
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
        return JSONResponse(error_body(HTTP_ERROR_CODES[422], detail), status_code=422)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Starlette logs the traceback after this answer is sent; the client gets one line.
        return JSONResponse(
            error_body(HTTP_ERROR_CODES[500], f"{type(exc).__name__} while answering {request.url.path}"),
            status_code=500,
        )


def _one_line(text: str) -> str:
    return " ".join(text.split())[:500]

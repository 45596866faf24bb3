"""POST /api/sql: read-only SQL on the catalog, within a time and a row budget (404 in preview mode).

The query runs in a worker thread while this handler watches the client: when it disconnects, the
query is interrupted (nobody is left to read the answer, and the thread and CPU are needed). A query
past its budget is answered 408, one stopped because the service stops 503.
"""

from __future__ import annotations

import functools
import logging
import threading
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from mtbsync.api.deps import SourceDep
from mtbsync.api.schemas import ErrorOut, SqlIn, SqlOut
from mtbsync.errors import QueryStoppedError, QueryTimeoutError

log = logging.getLogger("mtbsync")

router = APIRouter(prefix="/api", tags=["sql"])

# How often the handler asks whether the client is still there while its query runs.
_DISCONNECT_POLL_S = 0.2

_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {
        "model": ErrorOut,
        "description": "A statement or function that changes the catalog, or an SQL error.",
    },
    404: {"model": ErrorOut, "description": "No catalog (preview mode)."},
    408: {"model": ErrorOut, "description": "The query ran past its time budget and was stopped."},
    503: {"model": ErrorOut, "description": "The query was stopped: the service is stopping."},
}


@router.post("/sql", response_model=SqlOut, responses=_RESPONSES)
async def sql(query: SqlIn, source: SourceDep, request: Request) -> SqlOut | JSONResponse:
    """Run one read-only query; at most ``max_rows`` rows come back (``truncated``: there were more).

    The query may run for the server's budget (``mtbsync serve --sql-timeout``, 10 s by default) or
    the shorter ``timeout_s`` it asks for; then it is stopped and the answer is 408.
    """
    cancel = threading.Event()
    call = functools.partial(
        source.run_sql, query.sql, query.max_rows, timeout_s=query.timeout_s, cancel=cancel
    )
    outcome: Any = None

    async def run() -> None:
        nonlocal outcome
        try:
            outcome = await anyio.to_thread.run_sync(call)
        except Exception as exc:  # raised below, outside the task group (no ExceptionGroup)
            outcome = exc
        finally:
            group.cancel_scope.cancel()

    async def watch_client() -> None:
        try:
            while not await request.is_disconnected():
                await anyio.sleep(_DISCONNECT_POLL_S)
        finally:
            # The client left, or this request is cancelled (a server that stops): stop the query,
            # so the worker thread is free again (after the query is over, this does nothing).
            cancel.set()

    async with anyio.create_task_group() as group:
        group.start_soon(run)
        group.start_soon(watch_client)
    if isinstance(outcome, QueryTimeoutError):
        log.info("POST /api/sql -> 408: %s", outcome)
        return _error(408, "query timeout", str(outcome))
    if isinstance(outcome, QueryStoppedError):
        log.info("POST /api/sql -> 503: %s", outcome)
        return _error(503, "query stopped", str(outcome))
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def _error(status: int, code: str, detail: str) -> JSONResponse:
    body = ErrorOut(error=code, detail=" ".join(detail.split())[:500])
    return JSONResponse(body.model_dump(), status_code=status)

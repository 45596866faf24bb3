"""POST /api/sql: read-only SQL on the catalog (404 in preview mode)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from mtbsync.api.deps import SourceDep
from mtbsync.api.schemas import SqlIn, SqlOut

router = APIRouter(prefix="/api", tags=["sql"])


@router.post("/sql")
async def sql(query: SqlIn, source: SourceDep) -> SqlOut:
    """Run one read-only query; at most ``max_rows`` rows come back (``truncated``: there were more)."""
    return await run_in_threadpool(source.run_sql, query.sql, query.max_rows)

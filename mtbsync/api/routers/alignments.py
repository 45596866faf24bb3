"""GET /api/runs/{run_id}/alignment, POST /api/runs/{run_id}/anchors."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from mtbsync.api.deps import SourceDep, WriteAccess
from mtbsync.api.errors import error_responses
from mtbsync.api.schemas import AlignmentOut, AnchorIn

router = APIRouter(prefix="/api/runs/{run_id}", tags=["alignments"])


@router.get("/alignment", responses=error_responses(404, 422))
def alignment(
    run_id: str, source: SourceDep, samples: Annotated[int, Query(ge=2, le=5000)] = 600
) -> AlignmentOut:
    """The warp sampled both ways (for the time-delta curve and the synced players) and its quality."""
    return source.alignment(run_id, samples=samples)


@router.post(
    "/anchors",
    dependencies=[WriteAccess],
    status_code=201,
    responses=error_responses(400, 401, 403, 404, 409, 413, 422),
)
async def add_anchor(run_id: str, anchor: AnchorIn, source: SourceDep) -> AlignmentOut:
    """Pin the warp at (t_new, t_ref): the warp is refitted, markers not moved by hand re-transferred.

    Answers 201 (an anchor was added) with the refitted alignment.
    """
    return await run_in_threadpool(source.add_anchor, run_id, anchor.t_new, anchor.t_ref)

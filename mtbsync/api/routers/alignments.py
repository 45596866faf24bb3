"""GET /api/runs/{run_id}/alignment, POST /api/runs/{run_id}/anchors."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from mtbsync.api.deps import SourceDep, WriteAccess
from mtbsync.api.schemas import AlignmentOut, AnchorIn

router = APIRouter(prefix="/api/runs/{run_id}", tags=["alignments"])


@router.get("/alignment")
def alignment(
    run_id: str, source: SourceDep, samples: Annotated[int, Query(ge=2, le=5000)] = 600
) -> AlignmentOut:
    """The warp sampled both ways (for the time-delta curve and the synced players) and its quality."""
    return source.alignment(run_id, samples=samples)


@router.post("/anchors", dependencies=[WriteAccess])
async def add_anchor(run_id: str, anchor: AnchorIn, source: SourceDep) -> AlignmentOut:
    """Pin the warp at (t_new, t_ref): the warp is refitted, markers not moved by hand re-transferred."""
    return await run_in_threadpool(source.add_anchor, run_id, anchor.t_new, anchor.t_ref)

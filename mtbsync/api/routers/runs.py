"""GET /api/runs, /api/runs/{run_id}."""

from __future__ import annotations

from fastapi import APIRouter

from mtbsync.api.deps import SourceDep
from mtbsync.api.errors import error_responses
from mtbsync.api.schemas import RunOut

router = APIRouter(prefix="/api/runs", tags=["runs"])


@router.get("")
def list_runs(source: SourceDep) -> list[RunOut]:
    """Every run with its state: queued, ingesting, aligning, ready, needs review, not aligned, failed."""
    return source.list_runs()


@router.get("/{run_id}", responses=error_responses(404, 422))
def get_run(run_id: str, source: SourceDep) -> RunOut:
    """One run."""
    return source.get_run(run_id)

"""GET and POST /api/runs/{run_id}/markers, PATCH /api/runs/{run_id}/markers/{marker_id}."""

from __future__ import annotations

from fastapi import APIRouter

from mtbsync.api.deps import SourceDep, WriteAccess
from mtbsync.api.errors import error_responses
from mtbsync.api.schemas import MarkerIn, MarkerOut, MarkerPatch, MarkersOut

router = APIRouter(prefix="/api/runs/{run_id}/markers", tags=["markers"])


@router.get("", responses=error_responses(404, 422))
def list_markers(run_id: str, source: SourceDep) -> MarkersOut:
    """The run's markers, the reference's markers, and split times with their deltas to the reference."""
    return source.markers(run_id)


@router.post(
    "",
    dependencies=[WriteAccess],
    status_code=201,
    responses=error_responses(400, 401, 403, 404, 409, 413, 422),
)
def add_marker(run_id: str, marker: MarkerIn, source: SourceDep) -> MarkersOut:
    """Add a marker to a trail's reference run; its aligned runs get it too (saved before the answer)."""
    return source.add_marker(run_id, marker.name, marker.t)


@router.patch(
    "/{marker_id}",
    dependencies=[WriteAccess],
    responses=error_responses(400, 401, 403, 404, 409, 413, 422),
)
def update_marker(run_id: str, marker_id: int, patch: MarkerPatch, source: SourceDep) -> MarkerOut:
    """Move a marker (``t_new``) and/or mark it reviewed; saved before the answer."""
    return source.update_marker(run_id, marker_id, patch)

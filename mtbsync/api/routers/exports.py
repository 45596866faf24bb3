"""GET /api/runs/{run_id}/exports/{fmt}: the markers as a file for an editor."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse

from mtbsync.api.deps import SourceDep
from mtbsync.api.errors import error_responses
from mtbsync.export import FORMATS

router = APIRouter(prefix="/api/runs/{run_id}/exports", tags=["exports"])

_MEDIA_TYPES = {
    ".csv": "text/csv",
    ".edl": "text/plain",
    ".fcpxml": "application/xml",
    ".xml": "application/xml",
}


@router.get("", responses=error_responses(404, 422))
def formats(run_id: str, source: SourceDep) -> dict[str, str]:
    """The export formats of a run: name -> description (404 for an unknown run)."""
    source.get_run(run_id)
    return {name: spec.description for name, spec in FORMATS.items()}


@router.get(
    "/{fmt}",
    response_class=FileResponse,
    responses={200: {"content": {"text/csv": {}, "text/plain": {}, "application/xml": {}}}}
    | error_responses(400, 404, 422),
)
def download(run_id: str, fmt: str, source: SourceDep) -> FileResponse:
    """Write and download the run's markers as ``fmt`` (csv, edl, resolve-edl, fcpxml, premiere)."""
    path = source.export(run_id, fmt)
    return FileResponse(
        path,
        media_type=_MEDIA_TYPES.get(path.suffix, "application/octet-stream"),
        filename=path.name,
        headers={"Cache-Control": "no-store"},
    )

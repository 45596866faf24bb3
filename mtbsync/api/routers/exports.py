"""GET /api/runs/{run_id}/exports/{fmt}: the markers as a file for an editor."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse

from mtbsync.api.deps import SourceDep
from mtbsync.export import FORMATS

router = APIRouter(prefix="/api/runs/{run_id}/exports", tags=["exports"])

_MEDIA_TYPES = {
    ".csv": "text/csv",
    ".edl": "text/plain",
    ".fcpxml": "application/xml",
    ".xml": "application/xml",
}


@router.get("")
def formats() -> dict[str, str]:
    """The export formats: name -> description."""
    return {name: spec.description for name, spec in FORMATS.items()}


@router.get("/{fmt}")
def download(run_id: str, fmt: str, source: SourceDep) -> FileResponse:
    """Write and download the run's markers as ``fmt`` (csv, edl, resolve-edl, fcpxml, premiere)."""
    path = source.export(run_id, fmt)
    return FileResponse(
        path,
        media_type=_MEDIA_TYPES.get(path.suffix, "application/octet-stream"),
        filename=path.name,
        headers={"Cache-Control": "no-store"},
    )

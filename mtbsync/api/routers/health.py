"""GET /api/health."""

from __future__ import annotations

from fastapi import APIRouter

from mtbsync import __version__
from mtbsync.api.deps import SourceDep
from mtbsync.api.schemas import HealthOut

router = APIRouter(prefix="/api", tags=["health"])


@router.get("/health")
def health(source: SourceDep) -> HealthOut:
    """Whether the service is up, in which mode, and how many runs it knows."""
    return HealthOut(status="ok", mode=source.mode, version=__version__, runs=len(source.list_runs()))  # type: ignore[arg-type]

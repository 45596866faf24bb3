"""GET /api/media/{media_id}: a browser-playable (H.264) video, with HTTP Range requests."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from mtbsync.api.deps import SourceDep
from mtbsync.api.errors import error_responses

router = APIRouter(prefix="/api/media", tags=["media"])


@router.get(
    "/{media_id}",
    response_class=FileResponse,
    responses={200: {"content": {"video/mp4": {}}, "description": "The video (206 for a Range)."}}
    | error_responses(400, 404, 422),
)
async def media(media_id: str, source: SourceDep) -> FileResponse:
    """The video by id (never by path); Range requests give 206 partial content for seeking."""
    # Making a proxy for an HEVC file takes a while: keep it off the event loop.
    path = await run_in_threadpool(source.media_path, media_id)
    return FileResponse(path, media_type="video/mp4", headers={"Cache-Control": "private, max-age=3600"})

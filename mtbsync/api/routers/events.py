"""GET /api/events (Server-Sent Events) and GET /api/perf/history."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from sse_starlette.sse import EventSourceResponse

from mtbsync.api.deps import BrokerDep
from mtbsync.api.errors import error_responses

router = APIRouter(prefix="/api", tags=["events"])


@router.get(
    "/events",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "The event stream."}},
)
async def events(broker: BrokerDep) -> EventSourceResponse:
    """The live stream: ``hello``, ``telemetry`` (1 Hz), ``stage`` (start/finish), ``run``, ``markers``."""
    return EventSourceResponse(broker.stream(), ping=15, send_timeout=10)


@router.get("/perf/history", responses=error_responses(422))
def history(
    broker: BrokerDep, seconds: Annotated[float | None, Query(gt=0, le=86400)] = None
) -> dict[str, Any]:
    """Recent telemetry samples and stage records, for the charts' first draw."""
    return broker.history(seconds=seconds)

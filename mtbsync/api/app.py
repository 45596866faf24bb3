"""`create_app`: the FastAPI app over a `RunSource`, with the dashboard's static files at /."""

from __future__ import annotations

import asyncio
import html
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from mtbsync import __version__
from mtbsync.api.errors import install_error_handlers
from mtbsync.api.events import EventBroker
from mtbsync.api.routers import alignments, events, exports, health, markers, media, runs, sql
from mtbsync.api.security import MAX_BODY_BYTES, GuardMiddleware, Security, is_loopback, new_token
from mtbsync.api.source import RunSource
from mtbsync.timing import StageRecord

_TOKEN_SLOT = "{{MTBSYNC_TOKEN}}"


def dashboard_dir() -> Path:
    """The folder of the dashboard's static files (installed with the package)."""
    return Path(str(resources.files("mtbsync") / "dashboard"))


def create_app(
    source: RunSource,
    *,
    token: str | None = None,
    host: str = "127.0.0.1",
    broker: EventBroker | None = None,
    history: Sequence[StageRecord] = (),
    history_run_id: str | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> FastAPI:
    """Build the app.

    Args:
        source: Where runs come from (`PreviewSource` now, the catalog in ``mtbsync serve``).
        token: The write token (generated when None; read it back from ``app.state.security.token``).
        host: The address the server binds: a loopback address enables the Host check and lets the
            page embed the token for local clients.
        broker: The event hub (one is made when None); its telemetry sampler runs while the app does.
        history: Stage records to show in the timeline from the start (e.g. the sync that ran first).
        history_run_id: The run those records belong to.
        max_body_bytes: Largest request body accepted.

    Returns:
        The app, with ``app.state.source``, ``.broker`` and ``.security`` set.
    """
    broker = broker or EventBroker()
    broker.record_stages(history, history_run_id)
    security = Security(
        token=token or new_token(), loopback_only=is_loopback(host), max_body_bytes=max_body_bytes
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        broker.start(asyncio.get_running_loop())
        source.set_publisher(broker.publish)
        try:
            yield
        finally:
            broker.stop()
            source.close()

    app = FastAPI(
        title="mtbsync",
        version=__version__,
        description="Review aligned mountain-bike runs: runs, warps, markers, exports, live timings.",
        lifespan=lifespan,
    )
    app.state.source = source
    app.state.broker = broker
    app.state.security = security
    install_error_handlers(app)
    for module in (health, runs, alignments, markers, exports, media, sql, events):
        app.include_router(module.router)

    static = dashboard_dir()
    index_template = (static / "index.html").read_text(encoding="utf-8")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index(request: Request) -> HTMLResponse:
        # The page carries the token only to the user's own browser on a loopback-bound server.
        client = request.client.host if request.client else ""
        local = security.loopback_only and is_loopback(client)
        page = index_template.replace(_TOKEN_SLOT, html.escape(security.token if local else ""))
        return HTMLResponse(page, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})

    app.mount("/static", StaticFiles(directory=static), name="static")
    app.add_middleware(GuardMiddleware, security=security)
    return app

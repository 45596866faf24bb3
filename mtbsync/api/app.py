"""`create_app`: the FastAPI app over a `RunSource`, with the dashboard's static files at /."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from mtbsync import __version__
from mtbsync.api.errors import error_responses, install_error_handlers
from mtbsync.api.events import EventBroker
from mtbsync.api.routers import alignments, events, exports, health, markers, media, runs, session, sql
from mtbsync.api.security import MAX_BODY_BYTES, GuardMiddleware, Security, is_loopback, new_token
from mtbsync.api.source import RunSource
from mtbsync.timing import StageRecord

# Where the API docs' own files are served from (Swagger UI, shipped by the pinned `fastapi-offline`
# package): /docs works without a network, no CDN is asked. No /redoc: ReDoc fetches its logo from
# its CDN, and /docs shows the same.
DOCS_STATIC = "/static/swagger"
_PAGE_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


def dashboard_dir() -> Path:
    """The folder of the dashboard's static files (installed with the package)."""
    return Path(str(resources.files("mtbsync") / "dashboard"))


def docs_assets_dir() -> Path:
    """The folder of Swagger UI's and ReDoc's files (swagger-ui-bundle.js, swagger-ui.css, ...)."""
    return Path(str(resources.files("fastapi_offline") / "static"))


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
        host: The address the server binds: a loopback address enables the Host check.
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
        description=(
            "Review aligned mountain-bike runs: runs, warps, markers, exports, live timings. "
            "Writes need the token that mtbsync prints (`Authorization: Bearer T`), or the "
            'dashboard\'s session cookie. Every error is `{"error": code, "detail": one line}`.'
        ),
        lifespan=lifespan,
        docs_url=None,  # served below from the package's files
        redoc_url=None,
        # Every route may meet the guard's Host check (a loopback-bound server).
        responses=error_responses(421),
    )
    app.state.source = source
    app.state.broker = broker
    app.state.security = security
    install_error_handlers(app)
    for module in (health, session, runs, alignments, markers, exports, media, events):
        app.include_router(module.router)
    app.include_router(sql.router, responses=error_responses(400, 404, 413, 422))

    static = dashboard_dir()
    index_page = (static / "index.html").read_text(encoding="utf-8")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> HTMLResponse:
        # The same page for everyone, with no token in it: the browser trades the printed URL's
        # #token= for a session cookie (see `security`).
        return HTMLResponse(index_page, headers=_PAGE_HEADERS)

    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    def docs() -> HTMLResponse:
        page = get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title="mtbsync API",
            swagger_js_url=f"{DOCS_STATIC}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_STATIC}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_STATIC}/favicon.png",
            # No validator badge: it would be fetched from swagger.io.
            swagger_ui_parameters={"validatorUrl": None},
        )
        page.headers.update(_PAGE_HEADERS)
        return page

    # The docs' mount first: "/static" would otherwise take /static/swagger/... too.
    app.mount(DOCS_STATIC, StaticFiles(directory=docs_assets_dir()), name="docs-static")
    app.mount("/static", StaticFiles(directory=static), name="static")
    app.add_middleware(GuardMiddleware, security=security)
    return app

"""Running the API: uvicorn in-process, started and stopped by the CLI and the tests.

`ApiServer` runs an app on a socket it binds itself (so port 0 gives a free port, known before the
first request) in a background thread, or in the foreground until Ctrl-C. `preview_app` builds the
app of ``mtbsync preview``. `LibraryService` is ``mtbsync serve --library DIR``: the watch-folder,
a worker pool whose queue lives in the catalog, and the same app over `CatalogSource`.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from mtbsync.api import EventBroker, PreviewFiles, PreviewSource, create_app
from mtbsync.api.catalog_source import CatalogSource
from mtbsync.api.preview import RUN_ID
from mtbsync.api.security import new_token
from mtbsync.errors import ConfigError, MtbsyncError
from mtbsync.store.queries import DEFAULT_TIMEOUT_S as DEFAULT_SQL_TIMEOUT_S
from mtbsync.timing import StageRecord

log = logging.getLogger("mtbsync")


class ApiServer:
    """One uvicorn server for ``app`` on ``host:port`` (port 0: a free port).

    Args:
        app: The FastAPI app (from `create_app`).
        host: Address to bind.
        port: Port to bind; 0 picks a free one (read `port` / `url` after `bind`).
        log_level: uvicorn's log level.

    Raises:
        MtbsyncError: The address cannot be bound (in `bind`).
    """

    def __init__(
        self, app: FastAPI, *, host: str = "127.0.0.1", port: int = 8000, log_level: str = "warning"
    ) -> None:
        self.app = app
        self.host = host
        self.requested_port = port
        self._socket: socket.socket | None = None
        self._thread: threading.Thread | None = None
        config = uvicorn.Config(
            app,
            log_level=log_level,
            lifespan="on",
            timeout_graceful_shutdown=2,
            access_log=False,
            # Seeking a video opens many short range requests; keep the connections alive a while.
            timeout_keep_alive=30,
        )
        self._server = uvicorn.Server(config)

    def bind(self) -> ApiServer:
        """Bind the socket now (so the port is known); returns self."""
        if self._socket is not None:
            return self
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.requested_port))
        except OSError as exc:
            sock.close()
            raise MtbsyncError(
                f"cannot listen on {self.host}:{self.requested_port} ({exc.strerror or exc}); "
                "choose another --port or --host"
            ) from None
        sock.listen(128)
        sock.set_inheritable(True)
        self._socket = sock
        return self

    @property
    def port(self) -> int:
        """The bound port."""
        self.bind()
        assert self._socket is not None
        return int(self._socket.getsockname()[1])

    @property
    def url(self) -> str:
        """``http://host:port`` (127.0.0.1 when bound to all interfaces)."""
        host = self.host
        if host in ("0.0.0.0", "::"):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 15.0) -> ApiServer:
        """Serve in a background thread; returns once the server accepts requests.

        Raises:
            MtbsyncError: The server did not start within ``timeout`` seconds.
        """
        self.bind()
        self._thread = threading.Thread(target=self._run, name="mtbsync-uvicorn", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise MtbsyncError(f"the web server did not start on {self.url}")
            time.sleep(0.02)
        return self

    def _run(self) -> None:
        assert self._socket is not None
        self._server.run(sockets=[self._socket])

    def serve_forever(self) -> None:
        """Serve in this thread until Ctrl-C (or `stop` from another thread)."""
        self.bind()
        self._run()

    def stop(self, timeout: float = 10.0) -> None:
        """Close the event streams, stop the server and wait for its thread."""
        broker: EventBroker | None = getattr(self.app.state, "broker", None)
        if broker is not None:
            broker.stop()
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def resolve_token(host: str, token: str | None) -> tuple[str, bool]:
    """The token to use and whether it was generated (there is always one: writes need it).

    Raises:
        ConfigError: An empty or too short token was given.
    """
    if token is not None:
        if len(token) < 8:
            raise ConfigError("the token must be at least 8 characters")
        return token, False
    return new_token(), True


def preview_app(
    files: PreviewFiles,
    *,
    host: str = "127.0.0.1",
    token: str | None = None,
    review_threshold: float = 0.6,
    history: Sequence[StageRecord] = (),
    telemetry_interval_s: float = 1.0,
) -> tuple[FastAPI, PreviewSource]:
    """The dashboard app over one pair of files (``mtbsync preview``).

    Args:
        files: The pair's videos, warp and markers, and the output folder for edits.
        host: The address the server will bind.
        token: The write token (generated when None: read ``app.state.security.token``).
        review_threshold: Confidence under which a marker needs review.
        history: Stage records of a sync that ran just before, for the timeline.
        telemetry_interval_s: Seconds between telemetry samples.

    Returns:
        The app and its source.

    Raises:
        MediaError, WarpFileError, MarkerFileError, ConfigError: Unusable inputs.
    """
    source = PreviewSource(files, review_threshold=review_threshold)
    broker = EventBroker(telemetry_interval_s=telemetry_interval_s)
    app = create_app(source, token=token, host=host, broker=broker, history=history, history_run_id=RUN_ID)
    return app, source


def preview_files(
    reference: str | Path | Sequence[str | Path],
    new: str | Path | Sequence[str | Path],
    warp: str | Path,
    *,
    new_markers: str | Path | None = None,
    reference_markers: str | Path | None = None,
    out_dir: str | Path | None = None,
) -> PreviewFiles:
    """`PreviewFiles` from paths (strings welcome).

    Args:
        reference: The reference run's video, or its chapter files in timeline order.
        new: The new run's video, or its chapter files in timeline order.
        warp: warp.npz or timewarp.json.
        new_markers: new_markers.csv, if any.
        reference_markers: The reference run's markers CSV, if any.
        out_dir: Folder for edits (default: beside the new video).

    Raises:
        MediaError: A run given as an empty list of files.
    """

    def opt(p: Any) -> Path | None:
        return Path(p) if p is not None else None

    def run(video: str | Path | Sequence[str | Path]) -> Path | tuple[Path, ...]:
        return Path(video) if isinstance(video, str | Path) else tuple(Path(p) for p in video)

    return PreviewFiles(
        reference=run(reference),
        new=run(new),
        warp=Path(warp),
        new_markers=opt(new_markers),
        reference_markers=opt(reference_markers),
        out_dir=opt(out_dir),
    )


class LibraryService:
    """Everything ``mtbsync serve --library DIR`` runs, in one process that owns the catalog.

    The watcher thread ingests card dumps copied into the library (`library.ingest.watch_and_ingest`)
    and queues each new run; the worker pool (`library.worker.WorkerPool`) takes queued runs through
    proxy, index, trail and alignment; the API (`CatalogSource` on uvicorn) serves the dashboard.
    All three share one `Catalog` (a cursor per thread, one lock for write transactions): DuckDB
    allows one writing process, and this is it. While it runs, ``<catalog>.service.json`` tells
    ``mtbsync sql / runs / trails`` where to send their read-only queries.

    Args:
        library: The folder card dumps are copied into (watched recursively).
        db: The catalog file (None: ``$MTBSYNC_DB`` or the user data dir).
        host: Address to listen on.
        port: Port (0: a free one).
        token: Write token (generated when None).
        workers: Worker threads.
        work_dir: mtbsync-owned folder for proxies, indexes, alignments and exports (default:
            ``<catalog name>-serve/`` beside the catalog); must not be a visible folder of the library.
        config: `SyncConfig` for the pipeline (defaults when None).
        settle_s: Seconds a copied file must stay unchanged before it is ingested.
        review_threshold: Confidence under which a marker needs review.
        telemetry_interval_s: Seconds between CPU / memory / GPU samples on the event stream.
        force_polling: Poll the library instead of OS notifications (network shares).
        sql_timeout_s: Seconds a query of ``POST /api/sql`` may run before it is stopped (408).

    Raises:
        ConfigError: The library is not a folder, the work folder lies visibly inside it, or the SQL
            time budget is not positive.
    """

    def __init__(
        self,
        library: str | Path,
        *,
        db: str | Path | None = None,
        host: str = "127.0.0.1",
        port: int = 8000,
        token: str | None = None,
        workers: int = 1,
        work_dir: str | Path | None = None,
        config: Any = None,
        settle_s: float = 2.0,
        review_threshold: float = 0.6,
        telemetry_interval_s: float = 1.0,
        force_polling: bool | None = None,
        sql_timeout_s: float = DEFAULT_SQL_TIMEOUT_S,
    ) -> None:
        from mtbsync.store.catalog import default_db_path

        self.library = Path(library).expanduser().resolve()
        if not self.library.is_dir():
            raise ConfigError(f"the library {library} is not a folder")
        self.db_path = Path(db).expanduser() if db is not None else default_db_path()
        self.work_dir = (
            Path(work_dir).expanduser().resolve()
            if work_dir is not None
            else self.db_path.resolve().with_name(self.db_path.stem + "-serve")
        )
        if self.work_dir.is_relative_to(self.library) and not any(
            part.startswith(".") for part in self.work_dir.relative_to(self.library).parts
        ):
            raise ConfigError(
                f"the work folder {self.work_dir} lies inside the library: its proxies would be ingested "
                "as recordings; put the catalog (--db) elsewhere"
            )
        self.host, self.port = host, port
        self.token, self.token_generated = resolve_token(host, token)
        self.workers = workers
        self.config = config
        self.settle_s = settle_s
        self.review_threshold = review_threshold
        self.telemetry_interval_s = telemetry_interval_s
        self.force_polling = force_polling
        if not sql_timeout_s > 0:
            raise ConfigError("--sql-timeout must be more than 0 seconds")
        self.sql_timeout_s = float(sql_timeout_s)
        self.catalog: Any = None
        self.source: CatalogSource | None = None
        self.pool: Any = None
        self.server: ApiServer | None = None
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Where the API listens (after `start`)."""
        assert self.server is not None, "start the service first"
        return self.server.url

    def start(self) -> LibraryService:
        """Open the catalog, resume the queue, start workers, watcher and web server; returns self.

        Raises:
            CatalogLockedError: Another process holds the catalog.
            MtbsyncError: The address cannot be bound.
        """
        from mtbsync.library.worker import WorkerPool
        from mtbsync.store.catalog import Catalog
        from mtbsync.store.service_file import write_service_file

        self.catalog = Catalog.open(self.db_path)
        try:
            cache_dir = self.work_dir / "proxies"
            self.source = CatalogSource(
                self.catalog,
                self.library,
                cache_dir=cache_dir,
                work_dir=self.work_dir,
                review_threshold=self.review_threshold,
                sql_timeout_s=self.sql_timeout_s,
            )
            broker = EventBroker(telemetry_interval_s=self.telemetry_interval_s)
            app = create_app(self.source, token=self.token, host=self.host, broker=broker)
            self.server = ApiServer(app, host=self.host, port=self.port).bind()
            self.pool = WorkerPool(
                self.catalog,
                work_dir=self.work_dir,
                cache_dir=cache_dir,
                config=self.config,
                workers=self.workers,
                review_threshold=self.review_threshold,
                on_run_change=self.source.notify_run,
                stage_hooks=self.source.stage_hooks,
            )
            self.server.start()
            self.pool.start()
            self.pool.submit_unprocessed(self.library)
            self._stop.clear()
            self._watcher = threading.Thread(target=self._watch, name="mtbsync-watcher", daemon=True)
            self._watcher.start()
            write_service_file(self.db_path, self.server.url, token=self.token)
        except BaseException:
            self.stop()
            raise
        log.info("serving %s on %s (catalog %s)", self.library, self.server.url, self.db_path)
        return self

    def _watch(self) -> None:
        from mtbsync.library.ingest import KNOWN, NEW, watch_and_ingest

        def on_outcome(outcome: Any) -> None:
            # A known recording handed over again changed (or the service restarted): a run that
            # failed gets another try, the others are left as they are.
            if outcome.run_id is not None and outcome.status in (NEW, KNOWN):
                self.pool.submit(int(outcome.run_id), retry_failed=True)

        try:
            watch_and_ingest(
                self.library,
                self.catalog,
                self._stop,
                on_outcome=on_outcome,
                settle_s=self.settle_s,
                force_polling=self.force_polling,
            )
        except MtbsyncError as exc:
            if not self._stop.is_set():
                log.warning("the library is no longer watched: %s", exc)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop riders' SQL and watching, let running jobs finish (up to ``timeout``), stop the server.

        Then the catalog is closed. Queries of ``POST /api/sql`` still running are interrupted first
        (they answer 503 at once) and new ones refused, so the server's graceful shutdown does not
        wait for them and the catalog closes with no call in flight.
        """
        from mtbsync.store.service_file import remove_service_file

        if self.catalog is not None:
            stopped = self.catalog.stop_queries("the service is stopping")
            if stopped:
                log.info("stopping: %d running SQL queries interrupted", stopped)
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout)
            self._watcher = None
        if self.pool is not None:
            self.pool.stop(timeout)
            self.pool = None
        if self.server is not None:
            self.server.stop()
            self.server = None
        remove_service_file(self.db_path)
        if self.catalog is not None:
            self.catalog.close()
            self.catalog = None

    def serve_forever(self) -> None:
        """`start`, then serve until Ctrl-C (KeyboardInterrupt) and `stop` cleanly."""
        if self.server is None:
            self.start()
        try:
            while not self._stop.is_set():
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def __enter__(self) -> LibraryService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

"""Running the API: uvicorn in-process, started and stopped by the CLI and the tests.

`ApiServer` runs an app on a socket it binds itself (so port 0 gives a free port, known before the
first request) in a background thread, or in the foreground until Ctrl-C. `preview_app` builds the
app of ``mtbsync preview``. Phase 2 adds ``serve_library``: the watch-folder, a worker pool whose
queue lives in the catalog, and the same app over a catalog-backed `RunSource`.
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
from mtbsync.api.preview import RUN_ID
from mtbsync.api.security import new_token
from mtbsync.errors import ConfigError, MtbsyncError
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
    reference: str | Path,
    new: str | Path,
    warp: str | Path,
    *,
    new_markers: str | Path | None = None,
    reference_markers: str | Path | None = None,
    out_dir: str | Path | None = None,
) -> PreviewFiles:
    """`PreviewFiles` from paths (strings welcome)."""

    def opt(p: Any) -> Path | None:
        return Path(p) if p is not None else None

    return PreviewFiles(
        reference=Path(reference),
        new=Path(new),
        warp=Path(warp),
        new_markers=opt(new_markers),
        reference_markers=opt(reference_markers),
        out_dir=opt(out_dir),
    )

"""The catalog: one DuckDB file with every trail, run, alignment, marker and stage timing.

This module holds the only ``duckdb.connect`` of mtbsync. A `Catalog` is opened once per process
(the CLI command or the service) and used as a context manager::

    with Catalog.open() as catalog:                 # $MTBSYNC_DB or the user data dir
        run_id = catalog.record_ingested_run(run)

Writes: each stage's results land in one transaction (`Catalog.transaction`), keyed by natural
unique keys (content identity; run + stage + start; path), so recording a result twice - a re-run
after a crash - is a no-op or an update, and a kill -9 mid-write leaves no partial rows (DuckDB's
write-ahead log only replays committed transactions).

Threads: DuckDB connections are not shared between threads; each thread gets its own cursor on the
one database, and a process-wide lock serialises write transactions. Readers on other threads see
the last committed state (MVCC), never half of a transaction.

One writer process: DuckDB lets one process hold a database file for writing; see `service_file`
for how the CLI reaches the catalog while `mtbsync serve` holds it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from mtbsync.errors import CatalogError, CatalogLockedError
from mtbsync.store.records import IngestedRun, MediaFileRecord
from mtbsync.store.schema import MIGRATIONS, MIGRATIONS_TABLE, SCHEMA_VERSION, TABLES, VIEWS, Migration
from mtbsync.timing import StageRecord

log = logging.getLogger("mtbsync")

DB_ENV = "MTBSYNC_DB"
DB_FILENAME = "catalog.duckdb"

MARKER_SOURCES = ("manual", "transferred", "hilight")
REVIEW_STATES = ("pending", "reviewed", "rejected")
JOB_STATES = ("queued", "running", "done", "failed")


def default_db_path() -> Path:
    """Where the catalog lives when no path is given: ``$MTBSYNC_DB``, else the user data dir.

    Returns:
        e.g. ``~/.local/share/mtbsync/catalog.duckdb`` on Linux.

    Raises:
        CatalogError: ``$MTBSYNC_DB`` is ``none`` (recording switched off).
    """
    env = os.environ.get(DB_ENV, "").strip()
    if env.lower() in {"none", "off", "-"}:
        raise CatalogError(f"the catalog is switched off ({DB_ENV}={env}); give a database file")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("mtbsync")) / DB_FILENAME


# The columns `Catalog.record_markers` writes, in its rows' order, with their types.
_MARKER_INSERT_SCHEMA: dict[str, Any] = {
    "run_id": pl.Int64,
    "name": pl.Utf8,
    "ordinal": pl.Int32,
    "source": pl.Utf8,
    "t": pl.Float64,
    "t_ref": pl.Float64,
    "confidence": pl.Float64,
    "needs_review": pl.Boolean,
    "alignment_id": pl.Int64,
    "colour": pl.Utf8,
    "comment": pl.Utf8,
    "updated_at": pl.Datetime("us"),
}


def utcnow() -> datetime:
    """Now as a naive UTC datetime (the catalog stores every TIMESTAMP in UTC)."""
    return datetime.now(UTC).replace(tzinfo=None)


def to_utc(value: datetime | float | None) -> datetime | None:
    """A datetime (aware or naive UTC) or Unix seconds as a naive UTC datetime."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(float(value), UTC).replace(tzinfo=None)
    if value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def _json(value: Any) -> str:
    return json.dumps(value if value is not None else {}, sort_keys=True, default=_json_default)


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, (Path, datetime)):
        return str(obj)
    return repr(obj)


def _finite(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def params_key(params: Mapping[str, Any] | None) -> str:
    """A short stable hash of a parameter dict: the same pair aligned with the same parameters is one row."""
    return hashlib.blake2b(_json(params or {}).encode(), digest_size=8).hexdigest()


def one_line(exc: BaseException) -> str:
    """A DuckDB error as one line a rider can read (no 'LINE 1: ...' context block)."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    return re.sub(r"\s+", " ", first)


@dataclass(frozen=True)
class WarpPoints:
    """Warp knots as plain arrays (what `Catalog.record_alignment` stores)."""

    t_new: Sequence[float]
    t_ref: Sequence[float]
    confidence: Sequence[float]


@dataclass(frozen=True)
class MarkerRow:
    """One marker to record on a run.

    Attributes:
        name: Marker name (need not be unique: ``ordinal`` keys it).
        t: Seconds in the run; None when a transferred marker could not be placed.
        t_ref: The reference marker's time, for transferred markers.
        confidence: In [0, 1]; 1 for manual markers.
        needs_review: True when an editor should check it.
        colour: Passed through to exports.
        comment: Passed through to exports.
    """

    name: str
    t: float | None
    t_ref: float | None = None
    confidence: float = 1.0
    needs_review: bool = False
    colour: str = ""
    comment: str = ""


class RunningQuery:
    """One query that may be stopped from another thread (its watchdog, a client gone, shutdown).

    DuckDB stops a running statement when its connection is interrupted; an interrupt that lands
    between two statements is lost, so `stop` records the reason first and whoever runs the query
    checks `reason` before each statement (and the watchdog interrupts again until it gives up).
    """

    def __init__(self, cursor: duckdb.DuckDBPyConnection) -> None:
        self.cursor = cursor
        self.reason: str | None = None
        self.changed = threading.Event()  # set by `stop` (wakes a watchdog)

    def stop(self, reason: str) -> None:
        """Interrupt the query; the first reason given is the one it reports."""
        if self.reason is None:
            self.reason = reason
        self.changed.set()
        self.interrupt()

    def interrupt(self) -> None:
        """Interrupt whatever statement runs on the cursor now (no-op between statements)."""
        with contextlib.suppress(duckdb.Error):
            self.cursor.interrupt()


@dataclass(frozen=True)
class Job:
    """One row of the service's queue."""

    job_id: int
    run_id: int | None
    kind: str
    state: str
    attempts: int
    reason: str = ""


class Catalog:
    """An open catalog database. Use `Catalog.open`; close it (or use ``with``) when done."""

    def __init__(self, connection: duckdb.DuckDBPyConnection, path: Path, *, read_only: bool) -> None:
        self._root = connection
        self.path = path
        self.read_only = read_only
        self._local = threading.local()
        self._local.conn = connection
        self._write_lock = threading.RLock()
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        self._cursors_lock = threading.Lock()
        self._closed = False
        # Riders' queries that may have to be stopped (`running_query`, `stop_queries`).
        self._queries: set[RunningQuery] = set()
        self._queries_done = threading.Condition(self._cursors_lock)
        self._refusing_queries: str | None = None

    # ------------------------------------------------------------------ opening and closing

    @classmethod
    def open(cls, path: Path | str | None = None, *, read_only: bool = False) -> Catalog:
        """Open (and create, and migrate) the catalog.

        Args:
            path: The database file; None -> ``$MTBSYNC_DB`` or the user data dir (`default_db_path`).
                ``":memory:"`` gives a throw-away catalog (tests, previews).
            read_only: Open without taking the write lock (several readers may share the file, but not
                with a writer). A read-only open never migrates.

        Returns:
            The open catalog.

        Raises:
            CatalogLockedError: Another process holds the file (e.g. `mtbsync serve` runs).
            CatalogError: The file is not a DuckDB database, is of a newer schema, needs migrating but
                was opened read-only, or cannot be created.
        """
        db_path = Path(path).expanduser() if path is not None else default_db_path()
        memory = str(path) == ":memory:"
        if not memory:
            if db_path.is_dir():
                raise CatalogError(
                    "this is a folder; --db / MTBSYNC_DB names the catalog file (e.g. catalog.duckdb)",
                    path=db_path,
                )
            if read_only and not db_path.is_file():
                raise CatalogError(
                    "no catalog here yet: run an `mtbsync index`/`sync` or `ingest` first", path=db_path
                )
            try:
                db_path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise CatalogError(
                    f"cannot create the catalog's folder: {exc.strerror}", path=db_path
                ) from None
        try:
            connection = duckdb.connect(":memory:" if memory else str(db_path), read_only=read_only)
        except duckdb.IOException as exc:
            message = one_line(exc)
            if "lock" in message.lower():
                pid = re.search(r"PID (\d+)", message)
                owner = f" (process {pid.group(1)})" if pid else ""
                raise CatalogLockedError(
                    f"the catalog is in use by another mtbsync process{owner}; stop it, or let the CLI "
                    "reach it through `mtbsync serve`",
                    path=db_path,
                ) from None
            raise CatalogError(f"cannot open the catalog: {message}", path=db_path) from None
        except duckdb.Error as exc:
            raise CatalogError(f"cannot open the catalog: {one_line(exc)}", path=db_path) from None
        catalog = cls(connection, db_path, read_only=read_only)
        try:
            catalog._setup()
        except BaseException:
            connection.close()
            raise
        return catalog

    def _setup(self) -> None:
        # Every TIMESTAMP is UTC; pin the session zone so no cast ever applies the machine's zone
        # (without ICU there are only naive timestamps, which is still correct).
        with contextlib.suppress(duckdb.Error):
            self._root.execute("SET TimeZone = 'UTC'")
        migrate(self._root, read_only=self.read_only, path=self.path)

    def close(self, *, wait_s: float = 5.0) -> None:
        """Close the database (and every thread's cursor). Safe to call twice.

        Queries still running on `running_query` cursors are interrupted first and given up to
        ``wait_s`` seconds to give up (DuckDB refuses to close a connection in the middle of a call).
        """
        if self._closed:
            return
        self.stop_queries("the catalog is closing")
        self._closed = True
        if not self.wait_queries(wait_s):  # pragma: no cover - DuckDB ignored the interrupt
            log.warning("catalog: %d queries still running at close", self.running_queries)
        with self._cursors_lock:
            for cursor in self._cursors:
                with contextlib.suppress(duckdb.Error):  # pragma: no cover
                    cursor.close()
        try:
            self._root.close()
        except duckdb.Error as exc:  # pragma: no cover - a thread still in a call
            log.warning("catalog: closed with a call still running (%s)", one_line(exc))

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        """Number of migrations applied to this file."""
        return schema_version(self._conn())

    # ------------------------------------------------------------------ connections and transactions

    def _conn(self) -> duckdb.DuckDBPyConnection:
        if self._closed:
            raise CatalogError("the catalog is closed", path=self.path)
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._root.cursor()
            self._local.conn = conn
            with self._cursors_lock:
                self._cursors.append(conn)
        return conn

    @contextmanager
    def running_query(self, *, own_cursor: bool = True) -> Iterator[RunningQuery]:
        """A registered query that another thread can stop (`RunningQuery.stop`, `stop_queries`).

        Args:
            own_cursor: Run on a cursor of its own (closed afterwards), so interrupting it stops this
                query and nothing else; False: on this thread's connection (a write transaction).

        Yields:
            The query's handle; run its statements on ``handle.cursor``.

        Raises:
            CatalogError: The catalog is closed, or refuses new queries (`stop_queries`).
        """
        with self._cursors_lock:
            if self._closed or self._refusing_queries is not None:
                raise CatalogError(
                    f"query refused: {self._refusing_queries or 'the catalog is closed'}", path=self.path
                )
            cursor = self._root.cursor() if own_cursor else None
        if cursor is None:
            cursor = self._conn()
        query = RunningQuery(cursor)
        with self._cursors_lock:
            self._queries.add(query)
        try:
            yield query
        finally:
            with self._cursors_lock:
                self._queries.discard(query)
                self._queries_done.notify_all()
            if own_cursor:
                with contextlib.suppress(duckdb.Error):
                    cursor.close()

    def stop_queries(self, reason: str, *, refuse_new: bool = True) -> int:
        """Interrupt every query running on a `running_query` cursor (a service that stops).

        Args:
            reason: Why, for the queries' errors (e.g. "the service is stopping").
            refuse_new: Refuse queries started from now on, with the same reason.

        Returns:
            How many were running.
        """
        with self._cursors_lock:
            if refuse_new and self._refusing_queries is None:
                self._refusing_queries = reason
            running = list(self._queries)
        for query in running:
            query.stop(reason)
        return len(running)

    def wait_queries(self, timeout: float) -> bool:
        """Wait until no `running_query` is left (up to ``timeout`` seconds); whether none is."""
        with self._cursors_lock:
            return self._queries_done.wait_for(lambda: not self._queries, timeout)

    @property
    def running_queries(self) -> int:
        """How many `running_query` queries are running now."""
        with self._cursors_lock:
            return len(self._queries)

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One transaction: everything inside commits together or not at all.

        Nested uses join the outer transaction, so a method that writes in its own transaction can
        be combined with others into one stage result.

        Yields:
            This thread's connection (for direct SQL inside the transaction).

        Raises:
            CatalogError: The catalog is read-only, or a statement failed (rolled back).
        """
        if self.read_only:
            raise CatalogError("the catalog is open read-only", path=self.path)
        conn = self._conn()
        depth = getattr(self._local, "depth", 0)
        if depth:
            self._local.depth = depth + 1
            try:
                yield conn
            finally:
                self._local.depth = depth
            return
        with self._write_lock:
            conn.execute("BEGIN TRANSACTION")
            self._local.depth = 1
            try:
                yield conn
            except BaseException as exc:
                self._local.depth = 0
                with contextlib.suppress(duckdb.Error):  # pragma: no cover - already aborted
                    conn.execute("ROLLBACK")
                if isinstance(exc, duckdb.Error):  # callers see one-line catalog errors, not DuckDB's
                    raise CatalogError(f"nothing saved: {one_line(exc)}", path=self.path) from None
                raise
            self._local.depth = 0
            try:
                conn.execute("COMMIT")
            except duckdb.Error as exc:
                raise CatalogError(
                    f"could not save to the catalog: {one_line(exc)}", path=self.path
                ) from None

    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> Any:
        """Run one statement on this thread's connection; DuckDB errors become one-line `CatalogError`.

        Returns:
            The DuckDB cursor; fetch all of it (``.fetchall()``) before the next statement.
        """
        try:
            return self._conn().execute(sql, params) if params is not None else self._conn().execute(sql)
        except duckdb.Error as exc:
            raise CatalogError(one_line(exc), path=self.path) from None

    def query(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> pl.DataFrame:
        """Run a query and return its rows as a polars DataFrame."""
        try:
            return self._conn().sql(sql, params=params).pl()
        except duckdb.Error as exc:
            raise CatalogError(one_line(exc), path=self.path) from None

    def _scalar(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        rows = self.execute(sql, params).fetchall()
        return rows[0][0] if rows else None

    def table(self, name: str) -> pl.DataFrame:
        """A whole table or view as a DataFrame.

        Raises:
            CatalogError: ``name`` is not one of the catalog's tables or views.
        """
        _check_relation(name)
        return self.query(f"SELECT * FROM {name}")

    def export_parquet(self, name: str, out: Path | str) -> Path:
        """Write a table or view to a Parquet file (atomically).

        Args:
            name: Table or view name (see `schema.TABLES`, `schema.VIEWS`).
            out: The Parquet file to write.

        Returns:
            The written path.
        """
        _check_relation(name)
        from mtbsync.io.files import atomic_write_bytes

        frame = self.table(name)
        out = Path(out)
        atomic_write_bytes(out, lambda fh: frame.write_parquet(fh))
        return out

    # ------------------------------------------------------------------ runs (ingest and CLI)

    def run_id_for_identity(self, identity: str) -> int | None:
        """The run recorded with this content identity, or None."""
        return self._scalar("SELECT run_id FROM runs WHERE identity = ?", [identity])

    def record_ingested_run(self, run: IngestedRun) -> int:
        """Record a recording found on a card: run, media files, GPS samples and HiLight markers.

        Idempotent on ``run.identity``: a second call (the same card dumped again, maybe elsewhere)
        returns the existing run id and only updates file paths that moved.

        Args:
            run: The recording as the ingest found it.

        Returns:
            The run id.
        """
        with self.transaction() as conn:
            existing = self.run_id_for_identity(run.identity)
            if existing is not None:
                self._update_media_paths(conn, existing, run)
                return existing
            now = utcnow()
            videos = sorted((m for m in run.media if m.role == "video"), key=lambda m: m.chapter)
            run_id = conn.execute(
                """INSERT INTO runs (identity, name, kind, video_path, source_dir, started_utc, duration_s,
                                     camera, gps_source, notes, created_at, updated_at)
                   VALUES (?, ?, 'recording', ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING run_id""",
                [
                    run.identity,
                    run.name,
                    videos[0].path if videos else None,
                    run.source_dir,
                    to_utc(run.started_utc),
                    _finite(run.duration_s),
                    run.camera,
                    run.gps_source,
                    "\n".join(run.notes),
                    now,
                    now,
                ],
            ).fetchall()[0][0]
            self._insert_media(conn, run_id, run.media)
            if run.gps is not None and len(run.gps):
                self._insert_gps(conn, run_id, run.gps)
            if run.hilights_s:
                self.record_markers(
                    run_id,
                    [MarkerRow(name=f"HiLight {k}", t=float(t)) for k, t in enumerate(run.hilights_s, 1)],
                    source="hilight",
                )
            log.info("catalog: recorded run %s (%s) as #%d", run.name, run.identity, run_id)
            return int(run_id)

    def _insert_media(self, conn: Any, run_id: int, media: Sequence[MediaFileRecord]) -> None:
        if not media:
            return
        conn.executemany(
            """INSERT INTO media_files (run_id, role, chapter, path, size, identity, duration_s, width,
                                        height, fps, codec) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            [
                [
                    run_id,
                    m.role,
                    m.chapter,
                    m.path,
                    m.size,
                    m.identity,
                    _finite(m.duration_s),
                    m.width,
                    m.height,
                    _finite(m.fps),
                    m.codec,
                ]
                for m in media
            ],
        )

    def _update_media_paths(self, conn: Any, run_id: int, run: IngestedRun) -> None:
        known = {
            (role, chapter): path
            for role, chapter, path in conn.execute(
                "SELECT role, chapter, path FROM media_files WHERE run_id = ?", [run_id]
            ).fetchall()
        }
        moved = False
        for m in run.media:
            old = known.get((m.role, m.chapter))
            if old is None:
                self._insert_media(conn, run_id, [m])
                moved = True
            elif old != m.path:
                conn.execute(
                    "UPDATE media_files SET path = ? WHERE run_id = ? AND role = ? AND chapter = ?",
                    [m.path, run_id, m.role, m.chapter],
                )
                moved = True
        if moved:
            videos = sorted((m for m in run.media if m.role == "video"), key=lambda m: m.chapter)
            conn.execute(
                "UPDATE runs SET source_dir = ?, video_path = coalesce(?, video_path), updated_at = ? "
                "WHERE run_id = ?",
                [run.source_dir, videos[0].path if videos else None, utcnow(), run_id],
            )
            log.info("catalog: run #%d found again in %s; file paths updated", run_id, run.source_dir)

    def _insert_gps(self, conn: Any, run_id: int, gps: pl.DataFrame) -> None:
        frame = gps
        if "utc" in frame.columns:
            dtype = frame.schema["utc"]
            if isinstance(dtype, pl.Datetime) and dtype.time_zone is not None:
                frame = frame.with_columns(
                    pl.col("utc").dt.convert_time_zone("UTC").dt.replace_time_zone(None)
                )
        columns = ["chapter", "t", "utc", "lat", "lon", "alt", "speed", "fix", "dop", "usable"]
        exprs = [pl.col(c) if c in frame.columns else pl.lit(None).alias(c) for c in columns]
        frame = frame.select(exprs)
        conn.register("_gps_in", frame)
        try:
            conn.execute(
                f"INSERT INTO gps_samples (run_id, {', '.join(columns)}) "
                f"SELECT ?, {', '.join(columns)} FROM _gps_in",
                [run_id],
            )
        finally:
            conn.unregister("_gps_in")

    def record_video_run(
        self,
        identity: str,
        path: str | Path,
        *,
        name: str | None = None,
        duration_s: float | None = None,
        started_utc: datetime | None = None,
        media: Sequence[MediaFileRecord] = (),
    ) -> int:
        """Record (or find) a run that is one video file given to the CLI.

        Idempotent on ``identity`` (`mtbsync.io.video.video_identity`); a video found at a new path
        updates ``video_path``.

        Returns:
            The run id.
        """
        path = str(Path(path).resolve())
        with self.transaction() as conn:
            existing = self.run_id_for_identity(identity)
            if existing is not None:
                conn.execute(
                    "UPDATE runs SET video_path = ?, updated_at = ? "
                    "WHERE run_id = ? AND video_path IS DISTINCT FROM ?",
                    [path, utcnow(), existing, path],
                )
                return int(existing)
            now = utcnow()
            run_id = conn.execute(
                """INSERT INTO runs (identity, name, kind, video_path, source_dir, started_utc, duration_s,
                                     created_at, updated_at)
                   VALUES (?, ?, 'video', ?, ?, ?, ?, ?, ?) RETURNING run_id""",
                [
                    identity,
                    name or Path(path).stem,
                    path,
                    str(Path(path).parent),
                    to_utc(started_utc),
                    _finite(duration_s),
                    now,
                    now,
                ],
            ).fetchall()[0][0]
            self._insert_media(conn, run_id, media)
            return int(run_id)

    def run(self, run_id: int) -> dict[str, Any] | None:
        """One run's row as a dict (None if unknown)."""
        frame = self.query("SELECT * FROM runs WHERE run_id = ?", [run_id])
        return frame.row(0, named=True) if len(frame) else None

    def run_by_name(self, name: str) -> int | None:
        """The id of the newest run called ``name`` (or whose id is ``name``), or None."""
        if name.isdigit() and self._scalar("SELECT 1 FROM runs WHERE run_id = ?", [int(name)]):
            return int(name)
        return self._scalar("SELECT run_id FROM runs WHERE name = ? ORDER BY run_id DESC LIMIT 1", [name])

    def gps_samples(self, run_id: int, *, usable_only: bool = True) -> pl.DataFrame:
        """A run's GPS samples ordered by time (only usable ones by default)."""
        where = " AND usable" if usable_only else ""
        return self.query(f"SELECT * FROM gps_samples WHERE run_id = ?{where} ORDER BY t", [run_id])

    # ------------------------------------------------------------------ trails

    def create_trail(self, name: str, *, reference_run_id: int | None = None, notes: str = "") -> int:
        """Create a trail (or return the existing one of that name).

        Returns:
            The trail id.
        """
        name = name.strip()
        if not name:
            raise CatalogError("a trail needs a name")
        with self.transaction() as conn:
            existing = self.trail_id(name)
            if existing is not None:
                return existing
            trail_id = conn.execute(
                "INSERT INTO trails (name, notes, created_at) VALUES (?, ?, ?) RETURNING trail_id",
                [name, notes, utcnow()],
            ).fetchall()[0][0]
            if reference_run_id is not None:
                self.assign_run(reference_run_id, trail_id)
                conn.execute(
                    "UPDATE trails SET reference_run_id = ? WHERE trail_id = ?", [reference_run_id, trail_id]
                )
            return int(trail_id)

    def trail_id(self, name_or_id: str | int) -> int | None:
        """A trail's id by name or id, or None."""
        if isinstance(name_or_id, int) or str(name_or_id).isdigit():
            found = self._scalar("SELECT trail_id FROM trails WHERE trail_id = ?", [int(name_or_id)])
            if found is not None:
                return int(found)
        return self._scalar("SELECT trail_id FROM trails WHERE name = ?", [str(name_or_id)])

    def trail(self, trail_id: int) -> dict[str, Any] | None:
        """One trail's row as a dict (None if unknown)."""
        frame = self.query("SELECT * FROM trails WHERE trail_id = ?", [trail_id])
        return frame.row(0, named=True) if len(frame) else None

    def assign_run(self, run_id: int, trail_id: int | None) -> None:
        """Put a run on a trail (None takes it off its trail)."""
        with self.transaction() as conn:
            if self.run(run_id) is None:
                raise CatalogError(f"no run #{run_id} in the catalog", path=self.path)
            conn.execute(
                "UPDATE runs SET trail_id = ?, updated_at = ? WHERE run_id = ?", [trail_id, utcnow(), run_id]
            )

    def add_run_note(self, run_id: int, note: str) -> None:
        """Append a line to a run's notes (what the run page shows under its name)."""
        with self.transaction() as conn:
            run = self.run(run_id) or {}
            notes = [n for n in str(run.get("notes") or "").splitlines() if n.strip()]
            conn.execute("UPDATE runs SET notes = ? WHERE run_id = ?", ["\n".join([*notes, note]), run_id])

    def set_reference_run(self, trail_id: int, run_id: int) -> None:
        """Make ``run_id`` the trail's reference (and put it on the trail)."""
        with self.transaction() as conn:
            self.assign_run(run_id, trail_id)
            conn.execute("UPDATE trails SET reference_run_id = ? WHERE trail_id = ?", [run_id, trail_id])

    def trail_runs(self, trail_id: int) -> list[int]:
        """Ids of a trail's runs, oldest first."""
        rows = self.execute(
            "SELECT run_id FROM runs WHERE trail_id = ? ORDER BY run_id", [trail_id]
        ).fetchall()
        return [int(r[0]) for r in rows]

    # ------------------------------------------------------------------ results of the pipeline

    def record_index(
        self,
        run_id: int,
        path: str | Path,
        *,
        keyframes: int | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> int:
        """Record a feature index file of a run (upsert on the file's path).

        Returns:
            The index id.
        """
        path = str(Path(path).resolve())
        with self.transaction() as conn:
            existing = self._scalar("SELECT index_id FROM indexes WHERE path = ?", [path])
            if existing is not None:
                conn.execute(
                    # A sync that only names the index must not wipe what `mtbsync index` recorded.
                    "UPDATE indexes SET run_id = ?, keyframes = coalesce(?, keyframes), "
                    "params = CASE WHEN ? = '{}' THEN params ELSE ? END, created_at = ? WHERE index_id = ?",
                    [run_id, keyframes, _json(params), _json(params), utcnow(), existing],
                )
                return int(existing)
            return int(
                conn.execute(
                    "INSERT INTO indexes (run_id, path, keyframes, params, created_at) "
                    "VALUES (?, ?, ?, ?, ?) "
                    "RETURNING index_id",
                    [run_id, path, keyframes, _json(params), utcnow()],
                ).fetchall()[0][0]
            )

    def latest_index(self, run_id: int) -> str | None:
        """Path of the newest index file recorded for a run that still exists on disk, or None."""
        rows = self.execute(
            "SELECT path FROM indexes WHERE run_id = ? ORDER BY created_at DESC, index_id DESC", [run_id]
        ).fetchall()
        for (path,) in rows:
            if Path(path).is_file():
                return str(path)
        return None

    def record_alignment(
        self,
        new_run_id: int,
        ref_run_id: int,
        *,
        ok: bool,
        reason: str = "",
        points: WarpPoints | None = None,
        metrics: Mapping[str, Any] | None = None,
        gates: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        warp_path: str | Path | None = None,
        out_dir: str | Path | None = None,
    ) -> int:
        """Record an alignment and its warp knots (replacing an earlier one of the same pair + parameters).

        Args:
            new_run_id: The aligned run.
            ref_run_id: The reference run it was aligned to.
            ok: Whether it passed the quality gates.
            reason: Why not, when not ok.
            points: The warp's knots.
            metrics: The warp's metrics (coverage, residuals_s, mean_confidence, ...).
            gates: The thresholds used.
            params: The parameters (their hash is part of the natural key).
            warp_path: The warp file on disk.
            out_dir: The folder the sync wrote into.

        Returns:
            The alignment id.
        """
        metrics = dict(metrics or {})
        residuals = metrics.get("residuals_s") or {}
        key = params_key(params)
        t_new = list(points.t_new) if points is not None else []
        t_ref = list(points.t_ref) if points is not None else []
        values = {
            "ok": bool(ok),
            "reason": reason or "",
            # The warp reports coverage per run; the catalog's column is the new run's share.
            "coverage": _finite(metrics.get("coverage", metrics.get("coverage_new"))),
            "mean_confidence": _finite(metrics.get("mean_confidence")),
            "residual_p50_s": _finite(residuals.get("p50")) if isinstance(residuals, Mapping) else None,
            "residual_p90_s": _finite(residuals.get("p90")) if isinstance(residuals, Mapping) else None,
            "new_start_s": _finite(t_new[0]) if len(t_new) >= 2 else None,
            "new_end_s": _finite(t_new[-1]) if len(t_new) >= 2 else None,
            "ref_start_s": _finite(t_ref[0]) if len(t_ref) >= 2 else None,
            "ref_end_s": _finite(t_ref[-1]) if len(t_ref) >= 2 else None,
            "warp_path": str(Path(warp_path).resolve()) if warp_path else None,
            "out_dir": str(Path(out_dir).resolve()) if out_dir else None,
            "params": _json(params),
            "gates": _json(gates),
            "metrics": _json(metrics),
            "created_at": utcnow(),
        }
        with self.transaction() as conn:
            existing = self._scalar(
                "SELECT alignment_id FROM alignments "
                "WHERE new_run_id = ? AND ref_run_id = ? AND params_key = ?",
                [new_run_id, ref_run_id, key],
            )
            if existing is not None:
                sets = ", ".join(f"{column} = ?" for column in values)
                conn.execute(
                    f"UPDATE alignments SET {sets} WHERE alignment_id = ?", [*values.values(), existing]
                )
                conn.execute("DELETE FROM warp_points WHERE alignment_id = ?", [existing])
                alignment_id = int(existing)
            else:
                columns = ["new_run_id", "ref_run_id", "params_key", *values]
                alignment_id = int(
                    conn.execute(
                        f"INSERT INTO alignments ({', '.join(columns)}) "
                        f"VALUES ({', '.join('?' * len(columns))}) "
                        "RETURNING alignment_id",
                        [new_run_id, ref_run_id, key, *values.values()],
                    ).fetchall()[0][0]
                )
            if points is not None and len(t_new):
                frame = pl.DataFrame(
                    {
                        "alignment_id": [alignment_id] * len(t_new),
                        "i": list(range(len(t_new))),
                        "t_new": [float(x) for x in t_new],
                        "t_ref": [float(x) for x in t_ref],
                        "confidence": [float(x) for x in points.confidence],
                    },
                    schema={
                        "alignment_id": pl.Int64,
                        "i": pl.Int32,
                        "t_new": pl.Float64,
                        "t_ref": pl.Float64,
                        "confidence": pl.Float64,
                    },
                )
                conn.register("_warp_in", frame)
                try:
                    conn.execute("INSERT INTO warp_points SELECT * FROM _warp_in")
                finally:
                    conn.unregister("_warp_in")
            return alignment_id

    def latest_alignment(self, new_run_id: int, ref_run_id: int | None = None) -> dict[str, Any] | None:
        """The newest alignment of a run (to a given reference), as a dict, or None."""
        sql = "SELECT * FROM alignments WHERE new_run_id = ?"
        params: list[Any] = [new_run_id]
        if ref_run_id is not None:
            sql += " AND ref_run_id = ?"
            params.append(ref_run_id)
        frame = self.query(sql + " ORDER BY created_at DESC, alignment_id DESC LIMIT 1", params)
        return frame.row(0, named=True) if len(frame) else None

    def warp_points(self, alignment_id: int) -> pl.DataFrame:
        """An alignment's warp knots (t_new, t_ref, confidence) in order."""
        return self.query(
            "SELECT t_new, t_ref, confidence FROM warp_points WHERE alignment_id = ? ORDER BY i",
            [alignment_id],
        )

    def record_markers(
        self,
        run_id: int,
        markers: Sequence[MarkerRow],
        *,
        source: str,
        alignment_id: int | None = None,
        keep_moved: bool = True,
    ) -> int:
        """Replace a run's markers of one source with ``markers`` (one transaction).

        Markers a user moved by hand (``moved_by_user``) are kept, with their time and review state,
        when ``keep_moved`` is set: a re-transfer after a new reference must not undo an editor's work.

        Args:
            run_id: The run the markers belong to.
            markers: The markers in their source order (the order keys them: names need not be unique).
            source: ``manual`` (reference markers), ``transferred`` or ``hilight``.
            alignment_id: The alignment transferred markers came through.
            keep_moved: Keep hand-moved markers of the same ordinal.

        Returns:
            The number of markers written (kept ones not counted).
        """
        if source not in MARKER_SOURCES:
            raise CatalogError(f"unknown marker source {source!r} (use one of {', '.join(MARKER_SOURCES)})")
        with self.transaction() as conn:
            moved: dict[tuple[int, str], int] = {}
            if keep_moved:
                for marker_id, ordinal, name in conn.execute(
                    "SELECT marker_id, ordinal, name FROM markers "
                    "WHERE run_id = ? AND source = ? AND moved_by_user",
                    [run_id, source],
                ).fetchall():
                    moved[(ordinal, name)] = marker_id
            keep_ids = list(moved.values()) or [-1]
            conn.execute(
                f"DELETE FROM markers WHERE run_id = ? AND source = ? AND marker_id NOT IN "
                f"({', '.join('?' * len(keep_ids))})",
                [run_id, source, *keep_ids],
            )
            rows = []
            kept_ordinals = {ordinal for ordinal, _ in moved}
            now = utcnow()
            for ordinal, m in enumerate(markers):
                if (ordinal, m.name) in moved:
                    # Keep the user's time; refresh what the transfer knows about the reference.
                    conn.execute(
                        "UPDATE markers SET t_ref = ?, alignment_id = ?, updated_at = ? WHERE marker_id = ?",
                        [_finite(m.t_ref), alignment_id, now, moved[(ordinal, m.name)]],
                    )
                    continue
                if ordinal in kept_ordinals:
                    # A hand-moved marker holds this slot under another name: the lists changed, and
                    # the user's work wins; drop it so the new one can take the slot.
                    conn.execute(
                        "DELETE FROM markers WHERE run_id = ? AND source = ? AND ordinal = ?",
                        [run_id, source, ordinal],
                    )
                rows.append(
                    [
                        run_id,
                        m.name,
                        ordinal,
                        source,
                        _finite(m.t),
                        _finite(m.t_ref),
                        float(m.confidence),
                        bool(m.needs_review),
                        alignment_id,
                        m.colour,
                        m.comment,
                        now,
                    ]
                )
            if rows:
                # One columnar insert: executemany costs milliseconds a row (minutes for 300,000).
                frame = pl.DataFrame(rows, schema=_MARKER_INSERT_SCHEMA, orient="row")
                conn.register("_markers_in", frame)
                try:
                    conn.execute(
                        f"INSERT INTO markers ({', '.join(_MARKER_INSERT_SCHEMA)}) SELECT * FROM _markers_in"
                    )
                finally:
                    conn.unregister("_markers_in")
            return len(rows)

    def markers(self, run_id: int, *, source: str | None = None) -> pl.DataFrame:
        """A run's markers (of one source, or all) ordered by time."""
        sql = "SELECT * FROM markers WHERE run_id = ?"
        params: list[Any] = [run_id]
        if source is not None:
            sql += " AND source = ?"
            params.append(source)
        return self.query(sql + " ORDER BY t NULLS LAST, source, ordinal", params)

    def move_marker(self, marker_id: int, t: float, *, reviewed: bool = True) -> None:
        """Move a marker by hand: it keeps this time through later re-transfers.

        Raises:
            CatalogError: No such marker.
        """
        with self.transaction() as conn:
            if self._scalar("SELECT 1 FROM markers WHERE marker_id = ?", [marker_id]) is None:
                raise CatalogError(f"no marker #{marker_id} in the catalog", path=self.path)
            conn.execute(
                "UPDATE markers SET t = ?, moved_by_user = true, needs_review = false, review_state = ?, "
                "updated_at = ? WHERE marker_id = ?",
                [float(t), "reviewed" if reviewed else "pending", utcnow(), marker_id],
            )

    def set_review_state(self, marker_id: int, state: str) -> None:
        """Mark a marker pending / reviewed / rejected.

        Raises:
            CatalogError: Unknown state or marker.
        """
        if state not in REVIEW_STATES:
            raise CatalogError(f"unknown review state {state!r} (use one of {', '.join(REVIEW_STATES)})")
        with self.transaction() as conn:
            if self._scalar("SELECT 1 FROM markers WHERE marker_id = ?", [marker_id]) is None:
                raise CatalogError(f"no marker #{marker_id} in the catalog", path=self.path)
            conn.execute(
                "UPDATE markers SET review_state = ?, updated_at = ? WHERE marker_id = ?",
                [state, utcnow(), marker_id],
            )

    def record_export(
        self,
        path: str | Path,
        fmt: str,
        *,
        run_id: int | None = None,
        alignment_id: int | None = None,
        markers: int | None = None,
    ) -> int:
        """Record an exported file (upsert on its path).

        Returns:
            The export id.
        """
        path = str(Path(path).resolve())
        with self.transaction() as conn:
            conn.execute("DELETE FROM exports WHERE path = ?", [path])
            return int(
                conn.execute(
                    "INSERT INTO exports (run_id, alignment_id, format, path, markers, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?) RETURNING export_id",
                    [run_id, alignment_id, fmt, path, markers, utcnow()],
                ).fetchall()[0][0]
            )

    # ------------------------------------------------------------------ stage timings

    def record_stage_timings(
        self,
        records: Sequence[StageRecord],
        *,
        run_id: int | None = None,
        telemetry: Mapping[str, Any] | None = None,
    ) -> int:
        """Record finished stages (no-op for ones already recorded: run + stage + label + start is unique).

        Args:
            records: The `StageRecord`s (``extra["video"]`` becomes the label; the GPU figures are the
                record's own ``gpu_util_mean`` / ``vram_peak_mb`` where the stage sampled NVML).
            run_id: The run they belong to.
            telemetry: Fallback GPU figures (``gpu_util``, ``vram_mb``) sampled around the stages.

        Returns:
            The number of new rows.
        """
        telemetry = telemetry or {}
        written = 0
        with self.transaction() as conn:
            for rec in records:
                started = to_utc(rec.started_at)
                ended = to_utc(rec.started_at + rec.seconds)
                label = str(rec.extra.get("video", "")).strip()
                exists = conn.execute(
                    "SELECT 1 FROM stage_timings "
                    "WHERE run_id IS NOT DISTINCT FROM ? AND stage = ? AND label = ? "
                    "AND started_at = ?",
                    [run_id, rec.name, label, started],
                ).fetchall()
                if exists:
                    continue
                conn.execute(
                    """INSERT INTO stage_timings (run_id, stage, label, started_at, ended_at, seconds,
                           cpu_seconds,
                           frames, device, cpu_percent, rss_mb, gpu_util, vram_mb, extra)
                       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                    [
                        run_id,
                        rec.name,
                        label,
                        started,
                        ended,
                        float(rec.seconds),
                        float(rec.cpu_seconds),
                        rec.frames,
                        rec.device,
                        round(rec.cpu_percent, 1),
                        _finite(rec.peak_rss_mb),
                        _finite(_first(rec, "gpu_util_mean", "gpu_util", telemetry)),
                        _finite(_first(rec, "vram_peak_mb", "vram_mb", telemetry)),
                        _json(rec.extra),
                    ],
                )
                written += 1
        return written

    # ------------------------------------------------------------------ ingest bookkeeping

    def quarantine(self, path: str, size: int, mtime_ns: int, reason: str) -> None:
        """Put a file that failed to ingest in quarantine (replacing an earlier entry for it)."""
        with self.transaction() as conn:
            conn.execute("DELETE FROM quarantine WHERE path = ?", [path])
            conn.execute(
                "INSERT INTO quarantine (path, size, mtime_ns, reason, quarantined_at) "
                "VALUES (?, ?, ?, ?, ?)",
                [path, int(size), int(mtime_ns), reason, utcnow()],
            )

    def clear_quarantine(self, path: str) -> None:
        """Take a file out of quarantine (it ingested, or it is gone)."""
        with self.transaction() as conn:
            conn.execute("DELETE FROM quarantine WHERE path = ?", [path])

    def quarantined(self) -> dict[str, tuple[int, int, str]]:
        """Every quarantined file: path -> (size, mtime_ns, reason)."""
        rows = self.execute("SELECT path, size, mtime_ns, reason FROM quarantine ORDER BY path").fetchall()
        return {path: (int(size), int(mtime), reason) for path, size, mtime, reason in rows}

    def log_ingest_event(self, path: str, event: str, detail: str = "") -> None:
        """Append one ingest event (found, complete, ingested, skipped, failed, ...)."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO ingest_events (at_utc, path, event, detail) VALUES (?, ?, ?, ?)",
                [utcnow(), path, event, detail],
            )

    # ------------------------------------------------------------------ job queue (service)

    def enqueue(self, kind: str, run_id: int | None = None) -> int:
        """Queue a job; a job of the same kind and run already queued or running is returned instead.

        Returns:
            The job id.
        """
        with self.transaction() as conn:
            existing = self._scalar(
                "SELECT job_id FROM jobs WHERE kind = ? AND run_id IS NOT DISTINCT FROM ? "
                "AND state IN ('queued', 'running') ORDER BY job_id LIMIT 1",
                [kind, run_id],
            )
            if existing is not None:
                return int(existing)
            return int(
                conn.execute(
                    "INSERT INTO jobs (run_id, kind, created_at) VALUES (?, ?, ?) RETURNING job_id",
                    [run_id, kind, utcnow()],
                ).fetchall()[0][0]
            )

    def claim_job(self, worker: str = "", kinds: Sequence[str] | None = None) -> Job | None:
        """Take the oldest queued job (atomically: two workers never get the same job).

        Args:
            worker: A name for the worker (shown in the jobs table).
            kinds: Only jobs of these kinds; None for any.

        Returns:
            The job, now ``running``, or None when the queue is empty.
        """
        kind_sql = ""
        params: list[Any] = []
        if kinds:
            kind_sql = f" AND kind IN ({', '.join('?' * len(kinds))})"
            params = list(kinds)
        with self.transaction() as conn:
            row = conn.execute(
                f"SELECT job_id FROM jobs WHERE state = 'queued'{kind_sql} ORDER BY job_id LIMIT 1", params
            ).fetchall()
            if not row:
                return None
            got = conn.execute(
                "UPDATE jobs SET state = 'running', worker = ?, attempts = attempts + 1, started_at = ?, "
                "finished_at = NULL, reason = '' WHERE job_id = ? AND state = 'queued' "
                "RETURNING job_id, run_id, kind, state, attempts, reason",
                [worker, utcnow(), row[0][0]],
            ).fetchall()
        return Job(*got[0]) if got else None

    def finish_job(self, job_id: int, *, failed: bool = False, reason: str = "") -> None:
        """Mark a job done, or failed with a reason."""
        with self.transaction() as conn:
            conn.execute(
                "UPDATE jobs SET state = ?, reason = ?, finished_at = ? WHERE job_id = ?",
                ["failed" if failed else "done", reason, utcnow(), job_id],
            )

    def fail_job(self, job_id: int, reason: str) -> None:
        """Mark a job failed with a reason."""
        self.finish_job(job_id, failed=True, reason=reason)

    def requeue_running(self) -> int:
        """Put jobs left ``running`` by a stopped service back in the queue (call on service start).

        Returns:
            How many were requeued.
        """
        with self.transaction() as conn:
            rows = conn.execute(
                "UPDATE jobs SET state = 'queued', reason = 'requeued after restart', worker = '' "
                "WHERE state = 'running' RETURNING job_id"
            ).fetchall()
        return len(rows)

    def jobs(self, state: str | None = None) -> pl.DataFrame:
        """The queue (optionally only one state), oldest first."""
        if state is None:
            return self.query("SELECT * FROM jobs ORDER BY job_id")
        return self.query("SELECT * FROM jobs WHERE state = ? ORDER BY job_id", [state])


# ---------------------------------------------------------------------- migrations


def schema_version(conn: duckdb.DuckDBPyConnection) -> int:
    """Migrations applied to an open database (0 for a new file)."""
    exists = conn.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_migrations'"
    ).fetchall()[0][0]
    if not exists:
        return 0
    return int(conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchall()[0][0])


def migrate(
    conn: duckdb.DuckDBPyConnection,
    *,
    read_only: bool = False,
    path: Path | None = None,
    migrations: Sequence[Migration] = MIGRATIONS,
) -> int:
    """Apply the migrations a database has not seen, in one transaction.

    Args:
        conn: An open connection.
        read_only: Refuse instead of migrating (a read-only file cannot be changed).
        path: For messages.
        migrations: The list to apply (tests build older databases with a prefix of it).

    Returns:
        The schema version now.

    Raises:
        CatalogError: The file is newer than this mtbsync, or needs migrating but is read-only, or a
            migration failed (nothing of it is kept).
    """
    version = schema_version(conn)
    target = len(migrations)
    if version > SCHEMA_VERSION:
        raise CatalogError(
            f"the catalog is schema version {version}, newer than this mtbsync knows ({SCHEMA_VERSION}); "
            "upgrade mtbsync",
            path=path,
        )
    if version >= target:
        return version
    if read_only:
        raise CatalogError(
            f"the catalog is schema version {version} and needs upgrading to {target}; open it once "
            "without read-only (any mtbsync command that writes)",
            path=path,
        )
    try:
        conn.execute("BEGIN TRANSACTION")
        conn.execute(MIGRATIONS_TABLE)
        for number, migration in enumerate(migrations[version:], start=version + 1):
            conn.execute(migration.sql)
            conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                [number, migration.name, utcnow()],
            )
        conn.execute("COMMIT")
    except duckdb.Error as exc:
        with contextlib.suppress(duckdb.Error):  # pragma: no cover
            conn.execute("ROLLBACK")
        raise CatalogError(f"could not upgrade the catalog: {one_line(exc)}", path=path) from None
    log.info("catalog: schema %d -> %d (%s)", version, target, path)
    return target


def _check_relation(name: str) -> None:
    if name not in TABLES and name not in VIEWS:
        raise CatalogError(
            f"no table or view called {name!r}; tables: {', '.join(TABLES)}; views: {', '.join(VIEWS)}"
        )


def _first(record: StageRecord, field_name: str, legacy_key: str, telemetry: dict) -> object:
    """A stage's GPU figure: its own sampled value, else an `extra` entry, else the run's telemetry."""
    value = getattr(record, field_name, None)
    if value is not None:
        return value
    return record.extra.get(legacy_key, telemetry.get(legacy_key))

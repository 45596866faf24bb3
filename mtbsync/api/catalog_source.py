"""`CatalogSource`: every run of a library, read from (and edits written to) the DuckDB catalog.

Phase 2 of the service (``mtbsync serve``) serves this source; the routers and the dashboard are the
same as for `PreviewSource`. Run ids are the catalog's ``run_id`` as text; marker ids its
``marker_id``. The run state combines the job queue (queued / ingesting / aligning / failed) with the
latest alignment and the review state of the markers (ready / needs review / not aligned).

Edits land in the catalog in one transaction each: a moved marker keeps ``moved_by_user`` (later
re-transfers leave it where the user put it); an anchor pair pins the warp (`align.fit.pin_warp`), the
reference's markers not moved by hand are transferred again, and the pinned warp is recorded as the
run's newest alignment (its parameters list the anchors; the warp file goes to
``<work_dir>/runs/run<ID>/pinned_warp.npz``); a marker added on a trail's reference is carried onto
the trail's aligned runs through their warps (`library.runs.set_run_markers`). Exports are written
to ``<work_dir>/exports/`` and recorded in the catalog.

Remote SQL: the catalog's database refuses file access from SQL (``enable_external_access`` off), so
``read_csv('/etc/passwd')`` through ``POST /api/sql`` fails; `store.queries.run_sql` refuses writes
and functions that change state (``nextval``), and stops a query past its time budget
(``sql_timeout_s``) or whose client left.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

from mtbsync.align.warp import Warp, load_warp, save_warp
from mtbsync.api.schemas import (
    AlignmentOut,
    MarkerOut,
    MarkerPatch,
    MarkersOut,
    MediaOut,
    ReferenceMarkerOut,
    RunOut,
    SqlOut,
)
from mtbsync.api.source import Publish, alignment_view, confine, markers_view, splits
from mtbsync.errors import CatalogError, ConfigError, ConflictError, MtbsyncError, NotFoundError
from mtbsync.export import FORMATS, export_markers, options_for_video
from mtbsync.io.proxy import playable_video
from mtbsync.io.video import probe
from mtbsync.library.runs import pin_anchor, record_alignment, reference_markers_of, set_run_markers
from mtbsync.library.worker import JOB_INGEST, chapter_videos
from mtbsync.markers import Marker, TransferredMarker
from mtbsync.store.catalog import Catalog
from mtbsync.store.queries import DEFAULT_TIMEOUT_S, run_sql
from mtbsync.store.service_file import frame_to_rows
from mtbsync.timing import StageRecord, StageTimer

log = logging.getLogger("mtbsync")

# Job kinds that mean "being ingested" (proxy + index); any other running job means "aligning".
_INGEST_JOBS = frozenset({JOB_INGEST})
_BUSY_STATES = frozenset({"queued", "ingesting", "aligning"})


class CatalogSource:
    """A `RunSource` over an open catalog (``mtbsync serve --library DIR``).

    Args:
        catalog: The open (writable) catalog; the service owns it and shares it with the workers.
        library_root: The library folder: media outside it (and the proxy cache) are never served.
        cache_dir: Folder of browser proxies (the workers make them there too).
        work_dir: mtbsync-owned folder for exports and pinned warps (default: ``cache_dir``'s parent).
        review_threshold: Confidence under which a marker needs review (for the shading).
        sql_timeout_s: Seconds a query of ``POST /api/sql`` may run (a request may ask for less).
    """

    mode = "library"

    def __init__(
        self,
        catalog: Catalog,
        library_root: Path,
        *,
        cache_dir: Path,
        work_dir: Path | None = None,
        review_threshold: float = 0.6,
        sql_timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        if not sql_timeout_s > 0:
            raise ConfigError("the SQL time budget must be more than 0 seconds")
        self.catalog = catalog
        self.sql_timeout_s = float(sql_timeout_s)
        self.library_root = Path(library_root).resolve()
        self.cache_dir = Path(cache_dir).resolve()
        self.work_dir = Path(work_dir).resolve() if work_dir is not None else self.cache_dir.parent
        self.review_threshold = review_threshold
        self._publish: Publish = lambda event, data: None
        self._lock = threading.RLock()
        self._last_state: dict[int, str] = {}
        self._deny_file_access()

    def _deny_file_access(self) -> None:
        """Switch off DuckDB's file access from SQL, so remote SQL cannot read files (read_csv, ...).

        The setting is per database (every cursor of this process); the catalog itself never reads
        files through SQL, and once off it cannot be switched back on by a query (SET is refused).
        """
        try:
            self.catalog.execute("SET enable_external_access = false")
        except CatalogError as exc:  # pragma: no cover - older DuckDB
            log.warning("remote SQL may read files: %s", exc)

    def set_publisher(self, publish: Publish) -> None:
        """Receive the function that publishes events to the dashboard."""
        self._publish = publish

    def notify_run(self, run_id: int) -> None:
        """Publish the run's state to the dashboard if it changed (the workers call this)."""
        try:
            run = self.get_run(str(run_id))
        except NotFoundError:
            return
        with self._lock:
            before = self._last_state.get(run_id)
            self._last_state[run_id] = run.state
        if before != run.state:
            self._publish("run", {"run": run.model_dump(), "previous_state": before})

    def stage_hooks(self, run_id: int) -> tuple[Any, Any]:
        """(on_start, on_finish) for a worker's `StageTimer`: stage events tagged with the run id."""

        def on_start(record: StageRecord) -> None:
            self._publish("stage", {"phase": "start", "run_id": str(run_id), "record": record.to_dict()})

        def on_finish(record: StageRecord) -> None:
            self._publish("stage", {"phase": "finish", "run_id": str(run_id), "record": record.to_dict()})

        return on_start, on_finish

    # -- runs ------------------------------------------------------------------------------------

    def _run_id(self, run_id: str) -> int:
        if not str(run_id).isdigit():
            raise NotFoundError(f"no run {run_id!r}")
        return int(run_id)

    def _summary(self, run_id: int | None = None) -> list[dict[str, Any]]:
        sql = (
            "SELECT s.*, t.reference_run_id FROM run_summary s LEFT JOIN trails t ON t.trail_id = s.trail_id"
        )
        params: list[Any] = []
        if run_id is not None:
            sql += " WHERE s.run_id = ?"
            params.append(run_id)
        frame = self.catalog.query(sql + " ORDER BY s.ridden_at DESC NULLS LAST, s.run_id DESC", params)
        return list(frame.iter_rows(named=True))

    def _jobs(self, run_id: int | None = None) -> dict[int, dict[str, Any]]:
        """The newest job of each run (or of one run)."""
        where, params = (
            ("WHERE run_id = ?", [run_id]) if run_id is not None else ("WHERE run_id IS NOT NULL", [])
        )
        frame = self.catalog.query(
            "SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY run_id ORDER BY job_id DESC) AS k "
            f"FROM jobs {where}) WHERE k = 1",
            params,
        )
        return {int(r["run_id"]): r for r in frame.iter_rows(named=True)}

    def _first_chapters(self, run_id: int | None = None) -> dict[int, dict[str, Any]]:
        """Each run's first chapter video row, with the run's joined duration (one query for all)."""
        where, params = ("AND run_id = ?", [run_id]) if run_id is not None else ("", [])
        frame = self.catalog.query(
            "SELECT * REPLACE (sum(duration_s) OVER (PARTITION BY run_id) AS duration_s) "
            f"FROM media_files WHERE role = 'video' {where} "
            "QUALIFY row_number() OVER (PARTITION BY run_id ORDER BY chapter) = 1",
            params,
        )
        return {int(r["run_id"]): r for r in frame.iter_rows(named=True)}

    @staticmethod
    def _media_out(run_id: int, row: dict[str, Any] | None) -> MediaOut | None:
        if row is None:
            return None
        return MediaOut(
            id=str(run_id),
            url=f"/api/media/{run_id}",
            duration=float(row["duration_s"] or 0.0),
            fps=float(row["fps"] or 0.0),
            width=int(row["width"] or 0),
            height=int(row["height"] or 0),
            codec=str(row["codec"] or ""),
        )

    def _run_out(
        self, row: dict[str, Any], job: dict[str, Any] | None, media: dict[int, dict[str, Any]]
    ) -> RunOut:
        run_id = int(row["run_id"])
        state, reason = _state(row, job)
        reference = row.get("reference_run_id")
        is_reference = bool(row.get("is_reference"))
        return RunOut(
            id=str(run_id),
            name=str(row["run"]),
            trail=row.get("trail"),
            reference_id=None if reference is None or is_reference else str(int(reference)),
            state=state,  # type: ignore[arg-type]
            reason=reason,
            is_reference=is_reference,
            duration=row.get("duration_s"),
            markers=int(row.get("markers") or 0),
            needs_review=int(row.get("needs_review") or 0),
            coverage=row.get("coverage"),
            media=self._media_out(run_id, media.get(run_id)),
            reference_media=(
                None
                if reference is None or is_reference
                else self._media_out(int(reference), media.get(int(reference)))
            ),
            updated_at=time.time(),
        )

    def list_runs(self) -> list[RunOut]:
        """Every run, newest ridden first, with its live state."""
        jobs, media = self._jobs(), self._first_chapters()
        return [self._run_out(row, jobs.get(int(row["run_id"])), media) for row in self._summary()]

    def get_run(self, run_id: str) -> RunOut:
        """One run.

        Raises:
            NotFoundError: No such run.
        """
        rid = self._run_id(run_id)
        rows = self._summary(rid)
        if not rows:
            raise NotFoundError(f"no run {run_id!r} in the catalog")
        media = self._first_chapters(rid)
        reference = rows[0].get("reference_run_id")
        if reference is not None:
            media.update(self._first_chapters(int(reference)))
        return self._run_out(rows[0], self._jobs(rid).get(rid), media)

    # -- alignment and markers ---------------------------------------------------------------------

    def _warp(self, run_id: int) -> tuple[Warp, dict[str, Any]]:
        """The run's newest warp: from the warp file the catalog references, else from its knots."""
        row = self.catalog.latest_alignment(run_id)
        if row is None:
            raise NotFoundError(f"run {run_id} has no alignment yet")
        path = row.get("warp_path")
        if path and Path(path).is_file():
            try:
                return load_warp(path), row
            except MtbsyncError as exc:
                log.info("run %d: warp file unusable (%s); using the catalog's knots", run_id, exc)
        points = self.catalog.warp_points(int(row["alignment_id"]))
        warp = Warp(
            points["t_new"].to_numpy(),
            points["t_ref"].to_numpy(),
            points["confidence"].to_numpy(),
            ok=bool(row["ok"]),
            reason=str(row["reason"] or ""),
            metrics=_loads(row.get("metrics")),
            gates=_loads(row.get("gates")),
        )
        return warp, row

    def alignment(self, run_id: str, *, samples: int = 600) -> AlignmentOut:
        """The run's latest warp, sampled both ways, its quality and the anchors pinned by hand."""
        run = self.get_run(run_id)
        warp, row = self._warp(int(run_id))
        anchors = [(float(a), float(b)) for a, b in _loads(row.get("params")).get("anchors", [])]
        return alignment_view(
            run_id,
            warp,
            samples=samples,
            review_threshold=self.review_threshold,
            anchors=anchors,
            new_duration=run.duration,
        )

    def _marker_rows(self, run_id: int) -> list[dict[str, Any]]:
        """The run's own markers: manual (a reference's) else transferred, then the camera's HiLights."""
        frame = self.catalog.markers(run_id)
        rows = list(frame.iter_rows(named=True))
        manual = [r for r in rows if r["source"] == "manual"]
        placed = manual or [r for r in rows if r["source"] == "transferred"]
        return placed + [r for r in rows if r["source"] == "hilight"]

    def markers(self, run_id: str) -> MarkersOut:
        """The run's markers (transferred or its own, and HiLights), its reference's markers, and splits.

        Splits are between the trail's markers only (HiLights have no counterpart on the reference).
        """
        run = self.get_run(run_id)
        rows = self._marker_rows(int(run_id))
        to_ref = None
        if any(r["source"] == "hilight" for r in rows) and not run.is_reference:
            try:
                warp, _ = self._warp(int(run_id))
                to_ref = None if warp.is_empty else warp
            except NotFoundError:
                to_ref = None
        markers = []
        for r in rows:
            if r["review_state"] == "rejected":
                continue
            t = None if r["t"] is None else float(r["t"])
            if r["source"] == "hilight":
                t_ref = float(to_ref.to_ref(t)) if (to_ref is not None and t is not None) else (t or 0.0)
            else:
                t_ref = float(r["t_ref"] if r["t_ref"] is not None else (r["t"] or 0.0))
            markers.append(
                MarkerOut(
                    id=int(r["marker_id"]),
                    name=r["name"],
                    t_ref=round(t_ref, 4),
                    t_new=t,
                    confidence=float(r["confidence"]),
                    needs_review=bool(r["needs_review"]) and r["review_state"] == "pending",
                    reviewed=r["review_state"] == "reviewed",
                    moved=bool(r["moved_by_user"]),
                    colour=r["colour"] or "",
                    comment=(r["comment"] or "")
                    if r["source"] != "hilight"
                    else (r["comment"] or "camera HiLight"),
                )
            )
        reference: list[ReferenceMarkerOut] = []
        if run.reference_id is not None:
            # Its manual markers, else its HiLights ("HiLight 1", ...): what the runs got through the warp.
            reference = [
                ReferenceMarkerOut(name=m.name, t_ref=m.t_ref, colour=m.colour)
                for m in sorted(
                    reference_markers_of(self.catalog, int(run.reference_id)), key=lambda m: m.t_ref
                )
            ]
        hilights = {int(r["marker_id"]) for r in rows if r["source"] == "hilight"}
        view = markers_view(run_id, markers, reference)
        view.splits = splits([m for m in markers if m.id not in hilights])
        return view

    def update_marker(self, run_id: str, marker_id: int, patch: MarkerPatch) -> MarkerOut:
        """Move a marker (it keeps its time through later re-transfers) and/or set its review state.

        Raises:
            NotFoundError: No such run or marker.
            ConfigError: A time past the run's end.
        """
        run = self.get_run(run_id)
        if marker_id not in {int(r["marker_id"]) for r in self._marker_rows(int(run_id))}:
            raise NotFoundError(f"no marker {marker_id} on run {run_id}")
        if patch.t_new is not None and run.duration and patch.t_new > run.duration + 1e-6:
            raise ConfigError(f"t_new {patch.t_new:.3f} s is past the run's end ({run.duration:.3f} s)")
        with self._lock, self.catalog.transaction():
            if patch.t_new is not None:
                self.catalog.move_marker(marker_id, round(patch.t_new, 4), reviewed=True)
            if patch.reviewed is not None:
                self.catalog.set_review_state(marker_id, "reviewed" if patch.reviewed else "pending")
        self._publish("markers", {"run_id": run_id})
        self.notify_run(int(run_id))
        return next(m for m in self.markers(run_id).markers if m.id == marker_id)

    def add_marker(self, run_id: str, name: str, t: float) -> MarkersOut:
        """Add a marker to a trail's reference run (or a run on no trail) and carry it onto the trail.

        The marker is appended to the run's manual markers (to its HiLights named "HiLight 1", ...
        when it has none, so they stay on the other runs); `library.runs.set_run_markers` records
        the list and re-transfers it through each run's newest OK warp, hand-moved markers staying.

        Raises:
            NotFoundError: No such run.
            ConflictError: The run is aligned to another run (add the marker on its reference).
            ConfigError: A time past the run's end.
        """
        run = self.get_run(run_id)
        if not run.is_reference and run.reference_id is not None:
            raise ConflictError(
                f"run {run_id} takes its markers from its trail's reference (run {run.reference_id}): "
                "add the marker there"
            )
        rid = int(run_id)
        with self._lock:
            update = set_run_markers(
                self.catalog,
                rid,
                [*reference_markers_of(self.catalog, rid), Marker(name.strip(), float(t))],
                review_threshold=self.review_threshold,
            )
        for other in (rid, *update.transferred, *update.not_aligned):
            self._publish("markers", {"run_id": str(other)})
            self.notify_run(other)
        return self.markers(run_id)

    def add_anchor(self, run_id: str, t_new: float, t_ref: float) -> AlignmentOut:
        """Pin the warp at (t_new, t_ref), refit it and re-transfer the markers not moved by hand.

        The pinned warp becomes the run's newest alignment (one transaction with its markers).

        Raises:
            NotFoundError: No such run, or it has no alignment yet.
            ConflictError: The run is a trail's reference, or is being processed.
            ConfigError: A time outside the videos.
        """
        run = self.get_run(run_id)
        if run.is_reference or run.reference_id is None:
            raise ConflictError("the run is not aligned to a reference: nothing to pin")
        if run.state in _BUSY_STATES:
            raise ConflictError(f"the run is {run.state}; pin it once it is done")
        rid = int(run_id)
        ref_row = self.catalog.run(int(run.reference_id)) or {}
        ref_duration = float(ref_row.get("duration_s") or 0.0)
        if (run.duration and t_new > run.duration + 1e-6) or (ref_duration and t_ref > ref_duration + 1e-6):
            raise ConfigError(
                f"anchor ({t_new:.3f} s new, {t_ref:.3f} s reference) lies past the end of a video "
                f"({run.duration or 0:.3f} s / {ref_duration:.3f} s)"
            )
        timer = StageTimer()
        on_start, on_finish = self.stage_hooks(rid)
        timer.subscribe_start(on_start)
        timer.subscribe(on_finish)
        with self._lock:
            base, row = self._warp(rid)
            ref_run = int(row["ref_run_id"])
            params = _loads(row.get("params"))
            fps = run.media.fps if run.media is not None and run.media.fps else 30.0
            anchors, warp, transferred = pin_anchor(
                base,
                params.get("anchors", []),
                t_new,
                t_ref,
                frame_s=1 / fps,
                reference_markers=reference_markers_of(self.catalog, ref_run),
                review_threshold=self.review_threshold,
                timer=timer,
            )
            with timer.stage("save"):
                path = save_warp(warp, self.work_dir / "runs" / f"run{rid}" / "pinned_warp.npz")
                with self.catalog.transaction():
                    record_alignment(
                        self.catalog,
                        warp,
                        ref_run=ref_run,
                        new_run=rid,
                        params={**params, "anchors": [list(a) for a in anchors]},
                        warp_path=path,
                        out_dir=row.get("out_dir"),
                        transferred=transferred,
                    )
                    self.catalog.record_stage_timings(timer.records, run_id=rid)
        self._publish("markers", {"run_id": run_id})
        self.notify_run(rid)
        return self.alignment(run_id)

    # -- files -----------------------------------------------------------------------------------

    def export(self, run_id: str, fmt: str) -> Path:
        """Write the run's markers in ``fmt`` into ``<work_dir>/exports/``, record it, return the file."""
        spec = FORMATS.get(fmt)
        if spec is None:
            raise NotFoundError(f"no export format {fmt!r} (one of {', '.join(FORMATS)})")
        run = self.get_run(run_id)
        videos = self._videos(int(run_id))
        view = self.markers(run_id)
        markers = [
            TransferredMarker(m.name, m.t_ref, m.t_new, m.confidence, m.needs_review, m.colour, m.comment)
            for m in view.markers
        ]
        # A chaptered run keeps its joined timeline, as the preview and `mtbsync export` do.
        options = options_for_video(videos, probe(videos))
        suffix = ".markers.csv" if spec.name == "csv" else spec.suffix
        name = f"{Path(run.name).stem}.run{run_id}.{spec.name}{suffix}"
        result = export_markers(markers, spec.name, self.work_dir / "exports" / name, options)
        latest = self.catalog.latest_alignment(int(run_id))
        self.catalog.record_export(
            result.path,
            spec.name,
            run_id=int(run_id),
            alignment_id=None if latest is None else int(latest["alignment_id"]),
            markers=getattr(result, "written", None),
        )
        return result.path

    def _videos(self, run_id: int) -> list[Path]:
        """The run's chapter files in order, each confined to the library (what the workers aligned)."""
        try:
            paths = chapter_videos(self.catalog, run_id)
        except CatalogError:
            raise NotFoundError(f"run {run_id} has no video in the catalog") from None
        return [confine(path, [self.library_root]) for path in paths]

    def media_path(self, media_id: str) -> Path:
        """A browser-playable file of the run ``media_id`` (chapters joined into one), in the library.

        Raises:
            NotFoundError: No such run, no video, or a file outside the library and the proxy cache.
        """
        videos = self._videos(self._run_id(media_id))
        return confine(playable_video(videos, self.cache_dir), [self.library_root, self.cache_dir])

    def run_sql(
        self,
        sql: str,
        max_rows: int,
        *,
        timeout_s: float | None = None,
        cancel: threading.Event | None = None,
    ) -> SqlOut:
        """Read-only SQL on the catalog (writes refused by `run_sql`; files unreachable), bounded.

        The query runs on a cursor of its own for at most ``timeout_s`` (capped at the source's
        budget); setting ``cancel`` stops it; the service's shutdown stops it too
        (`Catalog.stop_queries`). DuckDB stops after ``max_rows + 1`` rows (one more tells
        ``truncated``).

        Raises:
            QueryTimeoutError: The budget ran out. QueryStoppedError: Cancelled, or the service stops.
            CatalogError: A refused statement or function, or an SQL error (one line).
        """
        budget = self.sql_timeout_s if timeout_s is None else min(timeout_s, self.sql_timeout_s)
        frame = run_sql(self.catalog, sql, max_rows=max_rows + 1, timeout_s=budget, cancel=cancel)
        body = frame_to_rows(frame.head(max_rows))
        return SqlOut(columns=body["columns"], rows=body["rows"], truncated=len(frame) > max_rows)

    def close(self) -> None:
        """The catalog belongs to the service, which closes it."""


def _state(row: dict[str, Any], job: dict[str, Any] | None) -> tuple[str, str]:
    """The dashboard's state of a run: its newest job while it has one pending, else its results."""
    if job is None and row.get("kind") == "recording" and row.get("trail") is None:
        # An ingested recording the pipeline has not seen yet: the service queues it (now, or on start).
        return "queued", ""
    if job is not None and job["state"] in ("queued", "running", "failed"):
        if job["state"] == "queued":
            return "queued", ""
        if job["state"] == "failed":
            return "failed", str(job.get("reason") or "")
        return ("ingesting" if job["kind"] in _INGEST_JOBS else "aligning"), ""
    if row.get("is_reference"):
        return "ready", ""
    if row.get("aligned") is None:
        why = "no trail yet" if row.get("trail") is None else "not aligned yet"
        return "not aligned", why
    if not row.get("aligned"):
        return "not aligned", str(row.get("align_reason") or "")
    if int(row.get("needs_review") or 0):
        return "needs review", f"{int(row['needs_review'])} marker(s) to check"
    return "ready", ""


def _loads(text: Any) -> dict[str, Any]:
    if isinstance(text, dict):
        return text
    try:
        value = json.loads(text or "{}")
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}

"""The service's worker pool: takes each new run of a library through the pipeline.

Every run gets two jobs, kept in the catalog's ``jobs`` table so that a restart resumes where the
service stopped (`Catalog.requeue_running` puts jobs a killed service left ``running`` back in the
queue):

1. ``ingest`` (the run shows *ingesting*): a browser-playable H.264 file (the GoPro .LRV, else the
   video itself when it is H.264, else a low-resolution proxy made once into the cache) and the run's
   feature index, recorded in the catalog.
2. ``align`` (*aligning*): the run is put on a trail (`library.runs.assign_run`: GPS, then vision); a
   run matching no trail starts a new trail and is its reference (the first run of a trail is its
   reference). Any other run is aligned to its trail's reference and the reference's markers are
   carried over; the alignment, the markers and the stage timings land in one transaction.

The run's state then reads *ready*, *needs review* or *not aligned* (with the reason); a job that
raises makes it *failed* with a one-line reason, and the pool goes on with the next job.

Recordings of several chapters are indexed, aligned and played as one timeline (`io.video`'s
chaptered sources; one joined browser proxy); the run's notes say how many chapters were joined.

Threads: the pool's threads share the service's one `Catalog` (each thread gets its own cursor and
write transactions are serialised by the catalog's lock), so the service process stays DuckDB's one
writer.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtbsync.errors import CatalogError, MediaError, MtbsyncError
from mtbsync.library.runs import (
    TimingBuffer,
    assign_run,
    index_matches,
    record_alignment,
    reference_markers_of,
)
from mtbsync.store.catalog import Catalog, Job
from mtbsync.timing import StageRecord, StageTimer

log = logging.getLogger("mtbsync")

JOB_INGEST = "ingest"  # browser proxy + feature index: the run shows "ingesting"
JOB_ALIGN = "align"  # trail + alignment + markers: "aligning"
JOB_KINDS = (JOB_INGEST, JOB_ALIGN)
# A job claimed this many times never finished: the service stopped (or crashed) during each try, so
# the file may be what brings it down. It is failed instead of crashing every restart.
MAX_ATTEMPTS = 3

# Called with a run id whenever its state may have changed (job claimed, finished or failed).
RunChanged = Callable[[int], None]
# run id -> (on_start, on_finish) subscribers for the run's `StageTimer` (the SSE stage events).
StageHooks = Callable[[int], tuple[Callable[[StageRecord], None], Callable[[StageRecord], None]]]

_CHAPTER_NOTE = "chapters joined into one timeline"


@dataclass(frozen=True)
class JobOutcome:
    """What one job did (for tests and logs)."""

    job_id: int
    run_id: int | None
    kind: str
    ok: bool
    reason: str = ""


def one_line_reason(exc: BaseException) -> str:
    """An exception as one line a rider can read (the run's ``failed`` reason)."""
    text = str(exc).strip() if isinstance(exc, MtbsyncError) else f"{type(exc).__name__}: {exc}".strip()
    text = re.sub(r"\s+", " ", text) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


class WorkerPool:
    """Threads that take queued runs through proxy, index, trail assignment and alignment.

    Args:
        catalog: The service's open (writable) catalog, shared with the watcher and the API.
        work_dir: mtbsync-owned folder for indexes and alignments (``runs/run<ID>/``); never the
            library itself.
        cache_dir: Folder for browser proxies (shared with the API's `CatalogSource`).
        config: `SyncConfig` for index and alignment (default parameters when None).
        workers: Number of worker threads.
        review_threshold: Confidence under which a transferred marker needs review.
        on_run_change: Called with a run id whenever its state may have changed.
        stage_hooks: Gives each run's `StageTimer` its start/finish subscribers (SSE stage events).
        poll_s: Longest wait between looks at the queue (`submit` wakes the workers at once).
    """

    def __init__(
        self,
        catalog: Catalog,
        *,
        work_dir: str | Path,
        cache_dir: str | Path,
        config: Any = None,
        workers: int = 1,
        review_threshold: float = 0.6,
        on_run_change: RunChanged | None = None,
        stage_hooks: StageHooks | None = None,
        poll_s: float = 1.0,
    ) -> None:
        from mtbsync.config import SyncConfig

        if workers < 1:
            raise MtbsyncError("the worker pool needs at least one worker")
        self.catalog = catalog
        self.work_dir = Path(work_dir)
        self.cache_dir = Path(cache_dir)
        self.config = config or SyncConfig()
        self.workers = workers
        self.review_threshold = review_threshold
        self.on_run_change = on_run_change
        self.stage_hooks = stage_hooks
        self.poll_s = poll_s
        self._stop = threading.Event()
        self._wake = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._busy = 0
        self._busy_lock = threading.Lock()
        # Two workers must not build the same reference index at once (the second would only wait).
        self._index_lock = threading.Lock()

    # -- queue -----------------------------------------------------------------------------------

    def submit(self, run_id: int, *, retry_failed: bool = False) -> int | None:
        """Queue a run for the pipeline, unless it has been queued before.

        Args:
            run_id: The run.
            retry_failed: Queue it again when its last job failed (its files changed, or the service
                restarted: the cause may be gone).

        Returns:
            The new job's id, or None when the run already has jobs (done, pending, or failed without
            ``retry_failed``).
        """
        last = self.catalog.execute(
            "SELECT state FROM jobs WHERE run_id = ? ORDER BY job_id DESC LIMIT 1", [run_id]
        ).fetchall()
        if last and not (retry_failed and last[0][0] == "failed"):
            return None
        job_id = self.catalog.enqueue(JOB_INGEST, run_id)
        self._notify(run_id)
        self.wake()
        return job_id

    def submit_unprocessed(self, library_root: str | Path) -> list[int]:
        """Queue every recording under ``library_root`` the pipeline has never seen (service start).

        Returns:
            The run ids queued.
        """
        root = Path(library_root).resolve()
        rows = self.catalog.execute(
            "SELECT r.run_id, r.video_path FROM runs r WHERE r.kind = 'recording' "
            "AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.run_id = r.run_id) ORDER BY r.run_id"
        ).fetchall()
        queued = []
        for run_id, path in rows:
            inside = path and Path(path).resolve().is_relative_to(root)
            if inside and self.submit(int(run_id)) is not None:
                queued.append(int(run_id))
        return queued

    def retry(self, run_id: int) -> int:
        """Queue a run again from the start (e.g. after its file was fixed).

        Returns:
            The job id.
        """
        job_id = self.catalog.enqueue(JOB_INGEST, run_id)
        self._notify(run_id)
        self.wake()
        return job_id

    def wake(self) -> None:
        """Tell idle workers to look at the queue now."""
        with self._wake:
            self._wake.notify_all()

    @property
    def idle(self) -> bool:
        """No job queued and none being worked on."""
        with self._busy_lock:
            if self._busy:
                return False
        return not len(self.catalog.jobs("queued")) and not len(self.catalog.jobs("running"))

    # -- threads ---------------------------------------------------------------------------------

    def start(self) -> WorkerPool:
        """Requeue jobs a stopped service left running, then start the worker threads; returns self."""
        requeued = self.catalog.requeue_running()
        if requeued:
            log.info("worker pool: %d job(s) left running by a stopped service queued again", requeued)
        self._stop.clear()
        for k in range(self.workers):
            thread = threading.Thread(
                target=self._loop, args=(f"worker-{k + 1}",), name=f"mtbsync-worker-{k + 1}"
            )
            thread.daemon = True  # a job in the middle of a long stage must not keep Ctrl-C waiting
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop taking jobs and wait up to ``timeout`` s for running ones to end.

        A job still running after that is left ``running`` in the catalog and queued again by the
        next `start`.

        Returns:
            True when every worker stopped.
        """
        self._stop.set()
        self.wake()
        for thread in self._threads:
            thread.join(timeout)
        alive = [t for t in self._threads if t.is_alive()]
        if alive:
            log.info("worker pool: %d job(s) still running; they resume on the next start", len(alive))
        self._threads = alive
        return not alive

    def __enter__(self) -> WorkerPool:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _loop(self, name: str) -> None:
        while not self._stop.is_set():
            try:
                outcome = self.run_next(name)
            except Exception as exc:  # the catalog closed under us (service stopping) or refused
                if self._stop.is_set():
                    return
                log.warning("%s: %s", name, one_line_reason(exc), exc_info=not isinstance(exc, CatalogError))
                outcome = None
            if outcome is None:
                with self._wake:
                    self._wake.wait(self.poll_s)

    def run_next(self, worker: str = "inline") -> JobOutcome | None:
        """Claim and run the oldest queued job in this thread.

        Returns:
            What the job did, or None when the queue was empty.
        """
        job = self.catalog.claim_job(worker, JOB_KINDS)
        if job is None:
            return None
        with self._busy_lock:
            self._busy += 1
        try:
            return self.process(job)
        finally:
            with self._busy_lock:
                self._busy -= 1

    def run_pending(self, worker: str = "inline", limit: int = 1000) -> list[JobOutcome]:
        """Run queued jobs in this thread until the queue is empty (tests, one-shot scripts)."""
        done: list[JobOutcome] = []
        while len(done) < limit:
            outcome = self.run_next(worker)
            if outcome is None:
                break
            done.append(outcome)
        return done

    # -- one job ---------------------------------------------------------------------------------

    def process(self, job: Job) -> JobOutcome:
        """Run one claimed job; any error marks it failed with a one-line reason (never raises).

        Returns:
            What the job did.
        """
        run_id = job.run_id
        if run_id is not None:
            self._notify(run_id)
        timer = StageTimer()
        buffer = TimingBuffer()
        timer.subscribe(buffer)
        if self.stage_hooks is not None and run_id is not None:
            on_start, on_finish = self.stage_hooks(run_id)
            timer.subscribe_start(on_start)
            timer.subscribe(on_finish)
        try:
            if run_id is None:
                raise MtbsyncError(f"job #{job.job_id} ({job.kind}) names no run")
            if job.attempts > MAX_ATTEMPTS:
                raise MtbsyncError(
                    f"gave up after {MAX_ATTEMPTS} tries: the service stopped during each "
                    f"({job.kind}); fix or replace the file, then it is tried again"
                )
            if job.kind == JOB_INGEST:
                self._ingest(job, run_id, timer, buffer)
            elif job.kind == JOB_ALIGN:
                self._align(job, run_id, timer, buffer)
            else:  # pragma: no cover - claim_job only hands out our kinds
                raise MtbsyncError(f"unknown job kind {job.kind!r}")
        except Exception as exc:  # a failing run must never stop the pool
            reason = one_line_reason(exc)
            if isinstance(exc, MtbsyncError):
                log.warning("run #%s failed (%s): %s", run_id, job.kind, reason)
            else:
                log.warning("run #%s failed (%s): %s", run_id, job.kind, reason, exc_info=True)
            try:
                with self.catalog.transaction():
                    if run_id is not None and self.catalog.run(run_id) is not None:
                        self.catalog.record_stage_timings(buffer.drain(), run_id=run_id)
                    self.catalog.fail_job(job.job_id, reason)
            except CatalogError as again:
                log.warning("job #%d: could not record its failure: %s", job.job_id, again)
            if run_id is not None:
                self._notify(run_id)
            return JobOutcome(job.job_id, run_id, job.kind, False, reason)
        self._notify(run_id)
        return JobOutcome(job.job_id, run_id, job.kind, True)

    def _notify(self, run_id: int) -> None:
        if self.on_run_change is None:
            return
        try:
            self.on_run_change(run_id)
        except Exception as exc:  # the dashboard must not break the pipeline
            log.warning("run #%d: state change not published: %s", run_id, one_line_reason(exc))

    def run_dir(self, run_id: int) -> Path:
        """The folder of a run's index and alignments."""
        return self.work_dir / "runs" / f"run{run_id}"

    def _ingest(self, job: Job, run_id: int, timer: StageTimer, buffer: TimingBuffer) -> None:
        from mtbsync.io.proxy import playable_video
        from mtbsync.pipeline import build_index

        videos = _existing_videos(self.catalog, run_id)
        with timer.stage("proxy"):
            playable_video(videos, self.cache_dir)  # chapters are joined into one playable file
        index_file = self.run_dir(run_id) / "index.npz"
        result = build_index(videos, index_file, self.config, timer=timer)
        with self.catalog.transaction():
            if len(videos) > 1:
                _add_note(self.catalog, run_id, f"{len(videos)} {_CHAPTER_NOTE}")
            self.catalog.record_index(
                run_id, index_file, keyframes=len(result.index), params=result.index.params
            )
            self.catalog.record_stage_timings(buffer.drain(), run_id=run_id)
            self.catalog.finish_job(job.job_id)
            self.catalog.enqueue(JOB_ALIGN, run_id)
        self.wake()

    def _reference_index(self, ref_run: int, timer: StageTimer) -> str | None:
        """The reference's index, built now if the reference has none yet (it may still be queued)."""
        from mtbsync.pipeline import build_index

        with self._index_lock:
            found = self.catalog.latest_index(ref_run)
            try:
                videos = _existing_videos(self.catalog, ref_run)
            except MtbsyncError as exc:
                log.warning("trail reference run #%d has no usable video: %s", ref_run, exc)
                return None
            if found is not None and index_matches(found, videos):
                return found
            index_file = self.run_dir(ref_run) / "index.npz"
            result = build_index(videos, index_file, self.config, timer=timer)
            self.catalog.record_index(
                ref_run, index_file, keyframes=len(result.index), params=result.index.params
            )
            return str(index_file)

    def _align(self, job: Job, run_id: int, timer: StageTimer, buffer: TimingBuffer) -> None:
        from mtbsync.pipeline import sync

        run = self.catalog.run(run_id)
        if run is None:
            raise CatalogError(f"no run #{run_id} in the catalog")
        videos = _existing_videos(self.catalog, run_id)
        trail_id = run.get("trail_id")
        if trail_id is None:
            for ref in _trail_references(self.catalog, exclude=run_id):
                self._reference_index(ref, timer)
            trail_id = assign_run(self.catalog, run_id, config=self.config, timer=timer).trail_id
        reference: int | None = None
        if trail_id is not None:
            trail = self.catalog.trail(int(trail_id)) or {}
            reference = trail.get("reference_run_id")
            if reference is None:  # a trail made by hand without a reference: this run is its first
                self.catalog.set_reference_run(int(trail_id), run_id)
                reference = run_id
        if trail_id is None:
            with self.catalog.transaction():
                trail_id = self.catalog.create_trail(
                    _new_trail_name(self.catalog, str(run["name"])), reference_run_id=run_id
                )
                self.catalog.record_stage_timings(buffer.drain(), run_id=run_id)
                self.catalog.finish_job(job.job_id)
            log.info("run #%d matches no trail: it is the reference of a new trail (#%d)", run_id, trail_id)
            return
        if int(reference) == run_id:
            with self.catalog.transaction():
                self.catalog.record_stage_timings(buffer.drain(), run_id=run_id)
                self.catalog.finish_job(job.job_id)
            return
        ref_run = int(reference)
        ref_videos = _existing_videos(self.catalog, ref_run)
        index_file = self._reference_index(ref_run, timer)
        markers = reference_markers_of(self.catalog, ref_run)
        result = sync(
            ref_videos,
            videos,
            self.run_dir(run_id) / f"to-run{ref_run}",
            self.config,
            index_path=index_file,
            new_index_path=self.catalog.latest_index(run_id),  # built at ingest: no second decode
            markers=markers or None,
            review_threshold=self.review_threshold,
            timer=timer,
        )
        warp = result.alignment.warp
        with self.catalog.transaction():
            record_alignment(
                self.catalog,
                warp,
                ref_run=ref_run,
                new_run=run_id,
                params=_params(self.config),
                warp_path=result.files.get("warp"),
                out_dir=result.out_dir,
                transferred=result.markers,
            )
            self.catalog.record_stage_timings(buffer.drain(), run_id=run_id)
            self.catalog.finish_job(job.job_id)
        log.info(
            "run #%d aligned to run #%d: %s",
            run_id,
            ref_run,
            "ok" if warp.ok else f"not aligned ({warp.reason})",
        )


def chapter_videos(catalog: Catalog, run_id: int) -> list[Path]:
    """A run's chapter videos in order (its ``video_path`` for a run recorded from one file).

    Raises:
        CatalogError: The run is unknown or has no video.
    """
    rows = catalog.execute(
        "SELECT path FROM media_files WHERE run_id = ? AND role = 'video' ORDER BY chapter", [run_id]
    ).fetchall()
    videos = [Path(r[0]) for r in rows if r[0]]
    if videos:
        return videos
    run = catalog.run(run_id)
    if run is None:
        raise CatalogError(f"no run #{run_id} in the catalog", path=catalog.path)
    if not run.get("video_path"):
        raise CatalogError(f"run #{run_id} has no video in the catalog", path=catalog.path)
    return [Path(run["video_path"])]


def _existing(video: Path) -> Path:
    if not video.is_file():
        raise MediaError("is not there any more (moved or deleted?)", path=video)
    return video


def _existing_videos(catalog: Catalog, run_id: int) -> list[Path]:
    """A run's chapter files, in order, each checked to be still there."""
    return [_existing(v) for v in chapter_videos(catalog, run_id)]


def _trail_references(catalog: Catalog, *, exclude: int) -> Iterable[int]:
    rows = catalog.execute(
        "SELECT reference_run_id FROM trails WHERE reference_run_id IS NOT NULL"
    ).fetchall()
    return [int(r[0]) for r in rows if int(r[0]) != exclude]


def _new_trail_name(catalog: Catalog, run_name: str) -> str:
    base = f"Trail of {run_name}"
    name, k = base, 2
    while catalog.trail_id(name) is not None:
        name, k = f"{base} ({k})", k + 1
    return name


def _add_note(catalog: Catalog, run_id: int, note: str) -> None:
    run = catalog.run(run_id) or {}
    if _CHAPTER_NOTE not in str(run.get("notes") or ""):
        catalog.add_run_note(run_id, note)


def _params(config: Any) -> dict[str, Any]:
    from dataclasses import asdict, is_dataclass

    return asdict(config) if is_dataclass(config) else dict(config or {})


__all__ = [
    "JOB_ALIGN",
    "JOB_INGEST",
    "JOB_KINDS",
    "MAX_ATTEMPTS",
    "JobOutcome",
    "WorkerPool",
    "chapter_videos",
    "one_line_reason",
]

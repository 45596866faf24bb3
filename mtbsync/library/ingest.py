"""Ingest card dumps into the catalog: one shot (`ingest_directory`) or continuously (`watch_and_ingest`).

For each recording found (`ingest.card`), in order:

1. Skip it if a chapter is still being written (one shot: modified less than ``settle_s`` ago; the
   watcher hands over only complete files) or sits unchanged in quarantine.
2. Identity by content (`io.video.video_identity` per chapter, hashed together when there are
   several: `io.video.chapters_identity`, the probe's own), so the same card dumped twice, even at
   another path, is recognised and not recorded again, and a file given to ``mtbsync index`` or
   ``sync`` finds the run its card ingest recorded.
3. Probe every chapter (duration, size, rate, codec) and its proxy; a chapter that cannot be read
   puts the file in quarantine with the reason (retried when its size or mtime change).
4. Read the GoPro telemetry (GPS, HiLights, camera, start time); problems become notes, never a
   reason to drop a usable video.
5. Record the recording with ONE catalog transaction (run, media, GPS, HiLights, quarantine cleared,
   event logged): a kill -9 leaves the run fully recorded or not at all, and a restart resumes.

The user's media are only ever opened for reading; nothing here writes, moves or deletes them.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mtbsync.errors import CardError, MtbsyncError
from mtbsync.ingest.card import scan_card
from mtbsync.ingest.gopro import GoProTelemetry, read_gopro_telemetry
from mtbsync.ingest.model import Recording
from mtbsync.ingest.watch import (
    DEFAULT_GIVE_UP_S,
    DEFAULT_SETTLE_S,
    FileState,
    StopEvent,
    file_state,
    wait_until_settled,
    watch_folder,
)
from mtbsync.io.video import VideoInfo, chapters_identity, probe, video_identity
from mtbsync.store.catalog import Catalog
from mtbsync.store.records import IngestedRun, MediaFileRecord

log = logging.getLogger("mtbsync")

ProgressFn = Callable[[str, int, int | None], None]

NEW, KNOWN, DUPLICATE, QUARANTINED, INCOMPLETE = "new", "known", "duplicate", "quarantined", "incomplete"
# Cameras split recordings into chapters of about 4 GB (FAT32's limit): one this big may have a next one.
CHAPTER_SPLIT_BYTES = 3_500_000_000
DEFAULT_NEXT_CHAPTER_WAIT_S = 60.0


@dataclass(frozen=True)
class RecordingOutcome:
    """What the ingest did with one recording.

    Attributes:
        name: The recording's name (first chapter's stem).
        status: "new" (recorded now), "known" (already in the catalog), "duplicate" (a second copy in
            this dump), "quarantined" (a file failed; see ``reason``) or "incomplete" (still being written).
        chapters: Number of chapters.
        path: The first chapter's video.
        run_id: Catalog run id (new or known), None otherwise.
        identity: Content identity, None when it could not be computed.
        duration_s: Total duration (new and known runs; known ones as the catalog has them).
        gps: Whether usable GPS (a fix) was recorded.
        gps_source: e.g. "gpmf:GPS9"; None without GPS.
        hilights: Number of HiLight tags.
        reason: Why the recording was quarantined or skipped.
        notes: Problems that did not stop the ingest.
    """

    name: str
    status: str
    chapters: int
    path: Path
    run_id: int | None = None
    identity: str | None = None
    duration_s: float | None = None
    gps: bool = False
    gps_source: str | None = None
    hilights: int = 0
    reason: str = ""
    notes: tuple[str, ...] = ()


@dataclass
class IngestReport:
    """Outcome of one ingest pass.

    Attributes:
        root: The folder ingested.
        outcomes: One per recording found, in discovery order.
        orphans: Proxies/thumbnails whose video was not found (ignored).
    """

    root: Path
    outcomes: list[RecordingOutcome] = field(default_factory=list)
    orphans: tuple[Path, ...] = ()

    def with_status(self, status: str) -> list[RecordingOutcome]:
        """Outcomes of one status."""
        return [o for o in self.outcomes if o.status == status]

    @property
    def new(self) -> list[RecordingOutcome]:
        return self.with_status(NEW)

    @property
    def known(self) -> list[RecordingOutcome]:
        return self.with_status(KNOWN) + self.with_status(DUPLICATE)

    @property
    def quarantined(self) -> list[RecordingOutcome]:
        return self.with_status(QUARANTINED)

    @property
    def incomplete(self) -> list[RecordingOutcome]:
        return self.with_status(INCOMPLETE)


def recording_identity(chapter_identities: Sequence[str]) -> str:
    """A recording's content identity from its chapters' identities, in chapter order.

    The probe's scheme (`mtbsync.io.video.chapters_identity`): one chapter is its file's identity,
    so ``mtbsync index`` of that file finds this run; several are a hash over them. Sidecars (LRV,
    THM) are left out: a dump with or without proxies is the same recording.
    """
    return chapters_identity(chapter_identities)


def _stat(path: Path) -> FileState:
    state = file_state(path)
    if state is None:
        raise CardError("file vanished while ingesting", path=path)
    return state


def _media(
    path: Path, role: str, chapter: int, size: int, identity: str, info: VideoInfo | None
) -> MediaFileRecord:
    return MediaFileRecord(
        path=str(path),
        role=role,
        chapter=chapter,
        size=size,
        identity=identity,
        duration_s=info.duration if info else None,
        width=info.width if info else None,
        height=info.height if info else None,
        fps=float(info.fps) if info and info.fps else None,
        codec=info.codec if info else None,
    )


def _telemetry(recording: Recording) -> tuple[GoProTelemetry | None, list[str]]:
    try:
        return read_gopro_telemetry(list(recording.videos)), []
    except MtbsyncError as exc:
        return None, [f"telemetry not read: {exc.message}"]
    except Exception as exc:  # a parser bug must not lose a usable video; say so and go on
        log.warning("%s: telemetry reader failed (%s: %s)", recording.name, type(exc).__name__, exc)
        return None, [f"telemetry not read: internal error {type(exc).__name__}"]


def _gps_frame(telemetry: GoProTelemetry | None, chapter_starts: list[float]):
    if telemetry is None or telemetry.gps is None or len(telemetry.gps) == 0:
        return None
    import polars as pl

    frame = telemetry.gps.to_frame()
    chapters = np.searchsorted(np.asarray(chapter_starts), telemetry.gps.t, side="right").clip(1, None)
    return frame.with_columns(pl.Series("chapter", chapters.astype(np.int32)))


class _Ingester:
    """Ingests recordings one at a time into an open catalog (shared by one-shot and watch modes)."""

    def __init__(self, catalog: Catalog, *, settle_s: float) -> None:
        self.catalog = catalog
        self.settle_s = settle_s
        self.quarantine = catalog.quarantined()
        self.seen: set[str] = set()  # identities handled in this pass (duplicates within one dump)

    def _skip(self, recording: Recording, status: str, reason: str, **kw) -> RecordingOutcome:
        return RecordingOutcome(
            recording.name, status, len(recording.chapters), recording.videos[0], reason=reason, **kw
        )

    def _quarantine(
        self, recording: Recording, path: Path, state: FileState, reason: str
    ) -> RecordingOutcome:
        with self.catalog.transaction():
            self.catalog.quarantine(str(path), state.size, state.mtime_ns, reason)
            self.catalog.log_ingest_event(str(path), "quarantined", reason)
        self.quarantine[str(path)] = (state.size, state.mtime_ns, reason)
        log.info("%s: quarantined (%s)", path, reason)
        return self._skip(recording, QUARANTINED, f"{path.name}: {reason}")

    def ingest(self, recording: Recording) -> RecordingOutcome:
        states: dict[Path, FileState] = {}
        now_ns = time.time_ns()
        for chapter in recording.chapters:
            try:
                state = _stat(chapter.video)
            except CardError as exc:
                return self._skip(recording, INCOMPLETE, exc.message)
            states[chapter.video] = state
            held = self.quarantine.get(str(chapter.video))
            if held is not None and held[:2] == (state.size, state.mtime_ns):
                return self._skip(recording, QUARANTINED, f"{chapter.video.name}: {held[2]} (unchanged)")
            if self.settle_s > 0 and now_ns - state.mtime_ns < self.settle_s * 1e9:
                return self._skip(recording, INCOMPLETE, f"{chapter.video.name} is still being written")

        # 2. identity by content
        identities: list[str] = []
        for chapter in recording.chapters:
            try:
                identities.append(video_identity(chapter.video))
            except OSError as exc:
                reason = f"cannot read the file ({exc.strerror or exc})"
                return self._quarantine(recording, chapter.video, states[chapter.video], reason)
        identity = recording_identity(identities)
        if identity in self.seen:
            return self._skip(
                recording, DUPLICATE, "the same recording is already in this dump", identity=identity
            )
        self.seen.add(identity)
        run_id = self.catalog.run_id_for_identity(identity)
        if run_id is not None:
            return self._known(recording, identity, identities, run_id)

        # 3. probe every chapter; an unreadable one holds the whole recording back
        infos: list[VideoInfo] = []
        for chapter in recording.chapters:
            try:
                infos.append(probe(chapter.video))
            except MtbsyncError as exc:
                return self._quarantine(recording, chapter.video, states[chapter.video], exc.message)
        notes = list(recording.notes)
        media: list[MediaFileRecord] = []
        for chapter, ident, info in zip(recording.chapters, identities, infos, strict=True):
            media.append(
                _media(chapter.video, "video", chapter.chapter, states[chapter.video].size, ident, info)
            )
            media.extend(self._sidecars(chapter, notes))

        # 4. telemetry
        telemetry, problems = _telemetry(recording)
        notes.extend(problems)
        if telemetry is not None:
            notes.extend(p for p in telemetry.problems if p not in notes)
            if telemetry.gps is not None:
                notes.extend(n for n in telemetry.gps.notes if n not in notes)
        starts = list(np.cumsum([0.0] + [i.duration for i in infos[:-1]]))
        gps = _gps_frame(telemetry, starts)
        run = IngestedRun(
            identity=identity,
            name=recording.name,
            source_dir=str(recording.folder),
            started_utc=telemetry.started_utc if telemetry else None,
            duration_s=float(sum(i.duration for i in infos)),
            camera=telemetry.camera if telemetry else None,
            media=tuple(media),
            gps=gps,
            gps_source=telemetry.gps.source if telemetry and telemetry.gps is not None else None,
            hilights_s=tuple(telemetry.hilights_s) if telemetry else (),
            notes=tuple(notes),
        )

        # 5. one transaction: the run with everything, the quarantine entries cleared, the event
        first = str(recording.videos[0])
        with self.catalog.transaction():
            run_id = self.catalog.record_ingested_run(run)
            for chapter in recording.chapters:
                if str(chapter.video) in self.quarantine:
                    self.catalog.clear_quarantine(str(chapter.video))
            self.catalog.log_ingest_event(
                first, "ingested", f"run {run_id} ({len(recording.chapters)} chapter(s))"
            )
        for chapter in recording.chapters:
            self.quarantine.pop(str(chapter.video), None)
        has_fix = bool(telemetry and telemetry.gps is not None and telemetry.gps.has_fix)
        log.info("%s: ingested as run %d", recording.name, run_id)
        return RecordingOutcome(
            recording.name,
            NEW,
            len(recording.chapters),
            recording.videos[0],
            run_id=run_id,
            identity=identity,
            duration_s=run.duration_s,
            gps=has_fix,
            gps_source=run.gps_source,
            hilights=len(run.hilights_s),
            notes=tuple(notes),
        )

    def _sidecars(
        self, chapter, notes: list[str], skip: dict[tuple[str, int], str] | None = None
    ) -> list[MediaFileRecord]:
        """Records of a chapter's proxy and thumbnail, leaving out those ``skip`` has at that path."""
        out = []
        for path, role in ((chapter.proxy, "proxy"), (chapter.thumbnail, "thumbnail")):
            if path is None or (skip is not None and skip.get((role, chapter.chapter)) == str(path)):
                continue
            state = file_state(path)
            if state is None:
                continue
            info = None
            if role == "proxy":
                try:
                    info = probe(path)
                except MtbsyncError as exc:
                    notes.append(f"proxy {path.name} not used: {exc.message}")
                    continue
            try:
                ident = info.identity if info else video_identity(path)
            except OSError as exc:
                notes.append(f"{role} {path.name} not readable ({exc.strerror or exc})")
                continue
            out.append(_media(path, role, chapter.chapter, state.size, ident, info))
        return out

    def _known(
        self, recording: Recording, identity: str, identities: list[str], run_id: int
    ) -> RecordingOutcome:
        # Found again (maybe at another path): tell the catalog only about files it does not have
        # there (moved, or a proxy/thumbnail copied after the run was recorded); nothing else changes.
        have = {
            (role, chapter): path
            for role, chapter, path in self.catalog.query(
                "SELECT role, chapter, path FROM media_files WHERE run_id = ?", [run_id]
            ).rows()
        }
        media: list[MediaFileRecord] = []
        notes: list[str] = []
        for chapter, ident in zip(recording.chapters, identities, strict=True):
            if have.get(("video", chapter.chapter)) != str(chapter.video):
                media.append(_media(chapter.video, "video", chapter.chapter, chapter.size, ident, None))
            media.extend(
                m
                for m in self._sidecars(chapter, notes, skip=have)
                if have.get((m.role, m.chapter)) != m.path
            )
        held = [c for c in recording.chapters if str(c.video) in self.quarantine]
        if not media and not held:
            return RecordingOutcome(
                recording.name,
                KNOWN,
                len(recording.chapters),
                recording.videos[0],
                run_id=run_id,
                identity=identity,
                **self._recorded(run_id),
            )
        run = IngestedRun(
            identity=identity,
            name=recording.name,
            source_dir=str(recording.folder),
            started_utc=None,
            duration_s=None,
            camera=None,
            media=tuple(media),
        )
        with self.catalog.transaction():
            if media:
                self.catalog.record_ingested_run(run)
            for chapter in recording.chapters:
                if str(chapter.video) in self.quarantine:
                    self.catalog.clear_quarantine(str(chapter.video))
        for chapter in recording.chapters:
            self.quarantine.pop(str(chapter.video), None)
        return RecordingOutcome(
            recording.name,
            KNOWN,
            len(recording.chapters),
            recording.videos[0],
            run_id=run_id,
            identity=identity,
            **self._recorded(run_id),
        )

    def _recorded(self, run_id: int) -> dict[str, Any]:
        """What the catalog holds of a known run: duration, GPS and HiLights, as a new run reports them."""
        rows = self.catalog.query(
            "SELECT duration_s, gps_source, "
            "(SELECT count(*) FROM gps_samples g WHERE g.run_id = r.run_id AND g.usable) AS fixes, "
            "(SELECT count(*) FROM markers m WHERE m.run_id = r.run_id AND m.source = 'hilight') AS hilights "
            "FROM runs r WHERE r.run_id = ?",
            [run_id],
        ).rows()
        if not rows:
            return {}
        duration_s, gps_source, fixes, hilights = rows[0]
        return {
            "duration_s": duration_s,
            "gps": bool(fixes),
            "gps_source": gps_source,
            "hilights": int(hilights or 0),
        }


def ingest_directory(
    root: str | Path,
    catalog: Catalog,
    *,
    progress: ProgressFn | None = None,
    settle_s: float = DEFAULT_SETTLE_S,
    wait_s: float = 0.0,
    on_wait: Callable[[list[Path], float], None] | None = None,
) -> IngestReport:
    """Ingest every recording of a card dump into the catalog (one shot).

    Args:
        root: The dump's folder (card root, DCIM, or any folder of media; searched recursively).
        catalog: The open catalog (written to; one transaction per recording).
        progress: Called as ``progress("ingest", done, total)`` after each recording.
        settle_s: A chapter modified less than this many seconds ago counts as still being written
            and is skipped (not quarantined); 0 takes everything as it is.
        wait_s: Wait up to this many seconds for such chapters to settle before ingesting (right
            after a card is copied every file is that recent); 0 skips them at once.
        on_wait: Called once with the chapters still too recent and the longest wait, before waiting
            (`mtbsync.ingest.watch.wait_until_settled`).

    Returns:
        One outcome per recording.

    Raises:
        CardError: ``root`` is missing or not a folder.
        CatalogError: The catalog cannot be written.
    """
    scan = scan_card(root)
    if wait_s > 0 and settle_s > 0:
        videos = [chapter.video for recording in scan.recordings for chapter in recording.chapters]
        wait_until_settled(videos, settle_s, wait_s, on_wait=on_wait)
    report = IngestReport(root=Path(root), orphans=scan.orphans)
    ingester = _Ingester(catalog, settle_s=settle_s)
    total = len(scan.recordings)
    if progress:
        progress("ingest", 0, total)
    for k, recording in enumerate(scan.recordings, 1):
        report.outcomes.append(ingester.ingest(recording))
        if progress:
            progress("ingest", k, total)
    return report


def _may_continue(recording: Recording) -> bool:
    """Whether the recording's last chapter is full-size, so that the camera may have split it further."""
    return recording.gopro and recording.chapters[-1].size >= CHAPTER_SPLIT_BYTES


def watch_and_ingest(
    root: str | Path,
    catalog: Catalog,
    stop_event: StopEvent,
    *,
    on_outcome: Callable[[RecordingOutcome], None] | None = None,
    settle_s: float = DEFAULT_SETTLE_S,
    give_up_s: float | None = DEFAULT_GIVE_UP_S,
    next_chapter_wait_s: float = DEFAULT_NEXT_CHAPTER_WAIT_S,
    poll_s: float = 0.5,
    force_polling: bool | None = None,
) -> None:
    """Watch ``root`` and ingest each recording once all its chapters are completely written.

    Files already in ``root`` are taken too (known recordings are recognised and skipped). Runs until
    ``stop_event`` is set; this is what `mtbsync watch` and the service run. A recording whose last
    chapter is full-size (about 4 GB, where cameras split) waits ``next_chapter_wait_s`` for a next
    chapter, because a recording recorded with fewer chapters than it has would get another identity.

    Args:
        root: Folder card dumps are copied into.
        catalog: The open catalog (this process is its writer).
        stop_event: Stops watching when set.
        on_outcome: Called with each recording's outcome (new, known, quarantined, ...).
        settle_s: Seconds a file must stay unchanged before it counts as complete.
        give_up_s: Seconds an unchanged, unreadable MP4 waits before it is quarantined.
        next_chapter_wait_s: Seconds a recording ending in a full-size chapter waits for a next one.
        poll_s: Longest time between re-checks of files being written.
        force_polling: Poll instead of OS notifications (network shares); None: automatic.

    Raises:
        CardError: ``root`` is missing or not a folder.
    """
    # The same absolute form as `watch_folder` hands over, so the scan's paths match the ready ones
    # (a relative folder such as `mtbsync watch dumps` matched nothing and ingested nothing).
    root = Path(os.path.abspath(Path(root).expanduser()))
    complete: dict[Path, FileState] = {}
    waiting: dict[str, float] = {}  # recording key -> monotonic deadline for a next chapter

    def ingest_ready(touched: set[Path], *, due_only: bool = False) -> None:
        try:
            scan = scan_card(root)
        except CardError as exc:
            log.warning("%s", exc)
            return
        ingester = _Ingester(catalog, settle_s=0.0)
        now = time.monotonic()
        for recording in scan.recordings:
            if due_only:
                if recording.key not in waiting or waiting[recording.key] > now:
                    continue
            elif not touched.intersection(recording.files):
                continue
            # Every chapter must be complete (a later chapter may still be copying).
            if any(complete.get(v) != file_state(v) for v in recording.videos):
                continue
            if _may_continue(recording) and not due_only:
                waiting[recording.key] = now + next_chapter_wait_s  # (re)start: a file of it just completed
                continue
            waiting.pop(recording.key, None)
            try:
                outcome = ingester.ingest(recording)
            except MtbsyncError as exc:  # e.g. the catalog refused a write: keep watching
                log.warning("%s: not ingested (%s)", recording.name, exc)
                continue
            if on_outcome is not None:
                on_outcome(outcome)

    def on_ready(paths: list[Path]) -> None:
        for path in paths:
            state = file_state(path)
            if state is not None:
                complete[path] = state
        ingest_ready(set(paths))

    def on_tick() -> None:
        now = time.monotonic()
        if any(deadline <= now for deadline in waiting.values()):
            ingest_ready(set(), due_only=True)
            for key in [k for k, deadline in waiting.items() if deadline <= now]:
                waiting.pop(key, None)  # gone from the scan meanwhile

    watch_folder(
        root,
        on_ready,
        stop_event,
        settle_s=settle_s,
        give_up_s=give_up_s,
        poll_s=poll_s,
        force_polling=force_polling,
        on_tick=on_tick,
    )

"""`PreviewSource`: one reference run and one new run from files, for ``mtbsync preview``.

The user's input files are never written. Edits (markers moved or reviewed, anchors pinning the warp)
go to an mtbsync-owned folder (``--out``, default ``<new video>.mtbsync/`` beside the new video):

- ``review.json``: the edit state (anchors, every marker with its review flags); written last, so it
  is the commit point, and read back on the next start, so a review can be resumed;
- ``reviewed_warp.npz`` + ``reviewed_timewarp.json``: the warp pinned at the anchors;
- ``reviewed_markers.csv``: the markers in new_markers.csv format (for ``mtbsync export``);
- ``exports/``: files downloaded from the dashboard; ``proxies/``: H.264 copies for the browser.

Every file is written atomically. A run recorded in GoPro chapters is given as its chapter files in
order: the browser plays one joined proxy, and durations, edits and exports are on the joined timeline.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtbsync.align.fit import pin_warp
from mtbsync.align.warp import Warp, load_warp, save_warp, write_timewarp_json
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
from mtbsync.api.source import Publish, alignment_view, confine, markers_view
from mtbsync.errors import ConfigError, ConflictError, MediaError, NotFoundError
from mtbsync.export import FORMATS, export_markers, options_for_video
from mtbsync.io.files import atomic_write_text
from mtbsync.io.proxy import playable_video
from mtbsync.io.video import VideoInfo, chapter_paths, find_proxy, probe, video_label
from mtbsync.library.runs import pin_anchor
from mtbsync.markers import (
    Marker,
    TransferredMarker,
    read_new_markers,
    read_reference_markers,
    transfer_markers,
    write_new_markers,
)
from mtbsync.timing import StageRecord, StageTimer

log = logging.getLogger("mtbsync")

REVIEW_SCHEMA_VERSION = 1
RUN_ID = "new"
REFERENCE_ID = "reference"


@dataclass(frozen=True)
class PreviewFiles:
    """The files of one preview.

    Attributes:
        reference: The reference run's video, or its chapter files in order (GX01..., GX02...).
        new: The new run's video, or its chapter files in order.
        warp: warp.npz or timewarp.json from ``mtbsync sync``.
        new_markers: new_markers.csv (transferred markers), if any.
        reference_markers: The reference run's markers CSV, if any.
        out_dir: Where edits are written (default: ``<new video>.mtbsync/`` beside the new video, or
            beside its first chapter).

    A one-file sequence is stored as that file, several as a tuple of paths.

    Raises:
        MediaError: A run given as an empty list of files.
    """

    reference: Path | tuple[Path, ...]
    new: Path | tuple[Path, ...]
    warp: Path
    new_markers: Path | None = None
    reference_markers: Path | None = None
    out_dir: Path | None = None

    def __post_init__(self) -> None:
        for role in ("reference", "new"):
            paths = chapter_paths(getattr(self, role))
            if not paths:
                raise MediaError(f"no video files given for the {role} run")
            object.__setattr__(self, role, paths[0] if len(paths) == 1 else paths)

    @property
    def reference_chapters(self) -> tuple[Path, ...]:
        """The reference run's files in timeline order (one for a single file)."""
        return chapter_paths(self.reference)

    @property
    def new_chapters(self) -> tuple[Path, ...]:
        """The new run's files in timeline order (one for a single file)."""
        return chapter_paths(self.new)

    @property
    def output_dir(self) -> Path:
        """The folder edits go to."""
        if self.out_dir is not None:
            return self.out_dir
        first = self.new_chapters[0]
        return first.with_name(first.name + ".mtbsync")


class PreviewSource:
    """A `RunSource` over one pair of videos and their alignment files.

    Args:
        files: The input files and the output folder.
        review_threshold: Confidence under which a marker needs review.

    Raises:
        MediaError, WarpFileError, MarkerFileError: An input is unreadable.
        ConfigError: The output folder would overwrite an input file.
    """

    mode = "preview"

    def __init__(self, files: PreviewFiles, *, review_threshold: float = 0.6) -> None:
        self.files = files
        self.review_threshold = review_threshold
        self.out_dir = files.output_dir.resolve()
        self.cache_dir = self.out_dir / "proxies"
        self._lock = threading.RLock()
        self._publish: Publish = _no_publish
        self.ref_info: VideoInfo = probe(files.reference)
        self.new_info: VideoInfo = probe(files.new)
        self._outputs = {
            "state": self.out_dir / "review.json",
            "warp": self.out_dir / "reviewed_warp.npz",
            "timewarp": self.out_dir / "reviewed_timewarp.json",
            "markers": self.out_dir / "reviewed_markers.csv",
        }
        self._check_outputs()
        self.base_warp: Warp = load_warp(files.warp)
        self.reference_markers: list[Marker] = self._read_reference_markers()
        self.anchors: list[tuple[float, float]] = []
        self.warp = self.base_warp
        self._markers: list[MarkerOut] = self._initial_markers()
        self._updated_at = time.time()
        self._resume()
        self._media = {
            RUN_ID: (files.new, self.new_info),
            REFERENCE_ID: (files.reference, self.ref_info),
        }

    # -- setup -----------------------------------------------------------------------------------

    def _check_outputs(self) -> None:
        inputs = {
            p.resolve()
            for p in (
                *self.files.reference_chapters,
                *self.files.new_chapters,
                self.files.warp,
                self.files.new_markers,
                self.files.reference_markers,
            )
            if p is not None
        }
        for path in self._outputs.values():
            if path.resolve() in inputs:
                raise ConfigError(
                    "the output folder holds an input file the review would overwrite; choose another --out",
                    path=path,
                )

    def _read_reference_markers(self) -> list[Marker]:
        if self.files.reference_markers is not None:
            return read_reference_markers(self.files.reference_markers)
        if self.files.new_markers is not None:
            # Without the reference's own file, its markers are the transferred markers' origins.
            return [
                Marker(m.name, m.t_ref, m.colour, m.comment.split(" | ")[0] if " | " in m.comment else "")
                for m in read_new_markers(self.files.new_markers)
            ]
        return []

    def _initial_markers(self) -> list[MarkerOut]:
        if self.files.new_markers is not None:
            transferred = read_new_markers(self.files.new_markers)
        else:
            transferred = transfer_markers(
                self.reference_markers, self.base_warp, review_threshold=self.review_threshold
            )
        return [_marker_out(k, m) for k, m in enumerate(transferred)]

    def _resume(self) -> None:
        """Pick up a review saved by an earlier session on the same videos and warp."""
        state_path = self._outputs["state"]
        if not state_path.exists():
            return
        try:
            state = json.loads(state_path.read_text(encoding="utf-8"))
            if state.get("kind") != "mtbsync.review" or state.get("schema_version") != REVIEW_SCHEMA_VERSION:
                raise ValueError("another format")
            if state.get("new_identity") != self.new_info.identity or state.get("warp") != str(
                self.files.warp.resolve()
            ):
                log.warning("%s is the review of other files; starting a new review", state_path)
                return
            anchors = [(float(a), float(b)) for a, b in state.get("anchors", [])]
            markers = [MarkerOut.model_validate(m) for m in state.get("markers", [])]
            if [m.name for m in markers] != [m.name for m in self._markers]:
                log.warning("%s holds other markers than the input files; starting a new review", state_path)
                return
        except (OSError, ValueError, TypeError) as exc:
            log.warning("%s is unreadable (%s); starting a new review", state_path, exc)
            return
        self.anchors = anchors
        if anchors:
            self.warp = pin_warp(self.base_warp, [a for a, _ in anchors], [b for _, b in anchors])
        self._markers = markers
        log.info("resumed the review in %s", state_path)

    def set_publisher(self, publish: Publish) -> None:
        """Receive the function that publishes events to the dashboard."""
        self._publish = publish

    def prepare_media(self) -> None:
        """Make the browser proxies now (slow for HEVC), so the first page load does not wait."""
        for media_id in self._media:
            self.media_path(media_id)

    # -- reading ---------------------------------------------------------------------------------

    def _check_run(self, run_id: str) -> None:
        if run_id not in (RUN_ID, REFERENCE_ID):
            raise NotFoundError(f"no run {run_id!r} (this preview has {RUN_ID!r} and {REFERENCE_ID!r})")

    def _state(self) -> tuple[str, str]:
        if not self.warp.ok:
            return "not aligned", self.warp.reason or "the alignment failed its quality gates"
        open_reviews = sum(m.needs_review and not m.reviewed for m in self._markers)
        if open_reviews:
            return "needs review", f"{open_reviews} marker(s) to check"
        return "ready", ""

    def _media_out(self, media_id: str) -> MediaOut:
        _, info = self._media[media_id]
        return MediaOut(
            id=media_id,
            url=f"/api/media/{media_id}",
            duration=round(info.duration, 4),
            fps=round(float(info.fps), 4),
            width=info.width,
            height=info.height,
            codec=info.codec,
        )

    def list_runs(self) -> list[RunOut]:
        """The new run, then the reference run."""
        return [self.get_run(RUN_ID), self.get_run(REFERENCE_ID)]

    def get_run(self, run_id: str) -> RunOut:
        """One of the two runs."""
        self._check_run(run_id)
        with self._lock:
            if run_id == REFERENCE_ID:
                return RunOut(
                    id=REFERENCE_ID,
                    name=video_label(self.files.reference),
                    state="ready",
                    is_reference=True,
                    duration=round(self.ref_info.duration, 3),
                    markers=len(self.reference_markers),
                    media=self._media_out(REFERENCE_ID),
                    updated_at=self._updated_at,
                )
            state, reason = self._state()
            view = alignment_view(
                RUN_ID,
                self.warp,
                samples=2,
                review_threshold=self.review_threshold,
                new_duration=self.new_info.duration,
            )
            return RunOut(
                id=RUN_ID,
                name=video_label(self.files.new),
                reference_id=REFERENCE_ID,
                state=state,  # type: ignore[arg-type]
                reason=reason,
                duration=round(self.new_info.duration, 3),
                markers=len(self._markers),
                needs_review=sum(m.needs_review and not m.reviewed for m in self._markers),
                coverage=view.coverage,
                media=self._media_out(RUN_ID),
                reference_media=self._media_out(REFERENCE_ID),
                updated_at=self._updated_at,
            )

    def alignment(self, run_id: str, *, samples: int = 600) -> AlignmentOut:
        """The new run's warp (the reference has none: 404)."""
        self._check_run(run_id)
        if run_id == REFERENCE_ID:
            raise NotFoundError(
                "the reference run is not aligned to anything; ask for the new run's alignment"
            )
        with self._lock:
            return alignment_view(
                run_id,
                self.warp,
                samples=samples,
                review_threshold=self.review_threshold,
                anchors=self.anchors,
                new_duration=self.new_info.duration,
            )

    def markers(self, run_id: str) -> MarkersOut:
        """Markers of the new run (or, for the reference, its own markers as placed at t_ref)."""
        self._check_run(run_id)
        with self._lock:
            reference = [
                ReferenceMarkerOut(name=m.name, t_ref=m.t_ref, colour=m.colour)
                for m in self.reference_markers
            ]
            if run_id == REFERENCE_ID:
                own = [
                    MarkerOut(
                        id=k,
                        name=m.name,
                        t_ref=m.t_ref,
                        t_new=m.t_ref,
                        confidence=1.0,
                        needs_review=False,
                        colour=m.colour,
                    )
                    for k, m in enumerate(self.reference_markers)
                ]
                return markers_view(run_id, own, reference)
            return markers_view(run_id, list(self._markers), reference)

    # -- edits -----------------------------------------------------------------------------------

    def _check_editable(self, run_id: str) -> None:
        self._check_run(run_id)
        if run_id == REFERENCE_ID:
            raise ConflictError(
                "the reference run's markers are its own input file; edit the new run's markers"
            )

    def add_marker(self, run_id: str, name: str, t: float) -> MarkersOut:
        """Refused: the preview's reference markers are the CSV it was started with.

        Raises:
            NotFoundError: No such run.
            ConflictError: Always (add reference markers to the reference CSV).
        """
        self._check_run(run_id)
        raise ConflictError(
            "add reference markers to the reference CSV and start `mtbsync preview` again "
            "(or serve a library: `mtbsync serve --library DIR`)"
        )

    def update_marker(self, run_id: str, marker_id: int, patch: MarkerPatch) -> MarkerOut:
        """Move a marker (it then counts as placed by hand and reviewed) and/or set its review flag.

        Raises:
            NotFoundError: No such run or marker.
            ConflictError: The run is the reference.
            ConfigError: The time is past the new video's end.
        """
        self._check_editable(run_id)
        with self._lock:
            if not 0 <= marker_id < len(self._markers):
                raise NotFoundError(f"no marker {marker_id} (the run has {len(self._markers)})")
            marker = self._markers[marker_id]
            update: dict[str, Any] = {}
            if patch.t_new is not None:
                if patch.t_new > self.new_info.duration + 1e-6:
                    raise ConfigError(
                        f"t_new {patch.t_new:.3f} s is past the new video's end "
                        f"({self.new_info.duration:.3f} s)"
                    )
                update.update(
                    t_new=round(patch.t_new, 4),
                    moved=True,
                    reviewed=True,
                    needs_review=False,
                    confidence=1.0,
                    # The transfer's reasons for review no longer apply; the user's own note stays.
                    comment=marker.comment.split(" | ")[0] if " | " in marker.comment else marker.comment,
                )
            if patch.reviewed is not None:
                update["reviewed"] = patch.reviewed
            if not update:
                return marker
            before = self._state()
            self._markers[marker_id] = marker.model_copy(update=update)
            self._save(before)
            return self._markers[marker_id]

    def add_anchor(self, run_id: str, t_new: float, t_ref: float) -> AlignmentOut:
        """Pin the warp at (t_new, t_ref), refit it, and re-transfer every marker not moved by hand.

        Raises:
            NotFoundError: No such run.
            ConflictError: The run is the reference.
            ConfigError: A time outside the videos.
        """
        self._check_editable(run_id)
        if t_new > self.new_info.duration + 1e-6 or t_ref > self.ref_info.duration + 1e-6:
            raise ConfigError(
                f"anchor ({t_new:.3f} s new, {t_ref:.3f} s reference) lies past the end of a video "
                f"({self.new_info.duration:.3f} s / {self.ref_info.duration:.3f} s)"
            )
        timer = StageTimer()
        timer.subscribe_start(lambda rec: self._publish("stage", _stage_event(rec, "start")))
        timer.subscribe(lambda rec: self._publish("stage", _stage_event(rec, "finish")))
        with self._lock:
            before = self._state()
            anchors, warp, transferred = pin_anchor(
                self.base_warp,
                self.anchors,
                t_new,
                t_ref,
                frame_s=float(1 / self.new_info.fps) if self.new_info.fps else 1 / 30,
                reference_markers=self.reference_markers,
                review_threshold=self.review_threshold,
                timer=timer,
            )
            self._markers = self._merge(transferred)
            self.anchors, self.warp = anchors, warp
            with timer.stage("save"):
                self._save(before)
            return self.alignment(run_id)

    def _merge(self, transferred: Sequence[TransferredMarker]) -> list[MarkerOut]:
        """Re-transferred markers, keeping those a user placed by hand where they put them."""
        by_key = {(m.name, round(m.t_ref, 3)): m for m in self._markers if m.moved}
        out = []
        for k, m in enumerate(transferred):
            kept = by_key.get((m.name, round(m.t_ref, 3)))
            out.append(kept.model_copy(update={"id": k}) if kept is not None else _marker_out(k, m))
        return out

    def _save(self, before: tuple[str, str]) -> None:
        """Write the edited warp, markers and state atomically (state last), then tell the dashboard."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        save_warp(self.warp, self._outputs["warp"])
        write_timewarp_json(self.warp, self._outputs["timewarp"])
        write_new_markers(self._outputs["markers"], [_transferred(m) for m in self._markers])
        state = {
            "kind": "mtbsync.review",
            "schema_version": REVIEW_SCHEMA_VERSION,
            "reference": _paths_text(self.files.reference_chapters),
            "new": _paths_text(self.files.new_chapters),
            "new_identity": self.new_info.identity,
            "warp": str(self.files.warp.resolve()),
            "anchors": [list(a) for a in self.anchors],
            "markers": [m.model_dump() for m in self._markers],
        }
        atomic_write_text(self._outputs["state"], json.dumps(state, indent=2) + "\n")
        self._updated_at = time.time()
        after = self._state()
        run = self.get_run(RUN_ID).model_dump()
        self._publish("markers", {"run_id": RUN_ID})
        if after != before:
            self._publish("run", {"run": run, "previous_state": before[0]})

    # -- files -----------------------------------------------------------------------------------

    def export(self, run_id: str, fmt: str) -> Path:
        """Write the new run's markers in ``fmt`` into ``exports/`` and return the file.

        Raises:
            ExportError: Unknown format or nothing to export.
        """
        self._check_editable(run_id)
        spec = FORMATS.get(fmt)
        if spec is None:
            raise NotFoundError(f"no export format {fmt!r} (one of {', '.join(FORMATS)})")
        chapters = self.files.new_chapters
        stem = chapters[0].stem
        options = options_for_video(chapters, self.new_info)
        with self._lock:
            markers = [_transferred(m) for m in self._markers]
        suffix = ".markers.csv" if spec.name == "csv" else spec.suffix
        name = f"{stem}.{spec.name}{suffix}" if spec.name == "resolve-edl" else stem + suffix
        result = export_markers(markers, spec.name, self.out_dir / "exports" / name, options)
        return result.path

    def media_path(self, media_id: str) -> Path:
        """The browser-playable file of ``reference`` or ``new`` (made once into ``proxies/``)."""
        if media_id not in self._media:
            raise NotFoundError(f"no media {media_id!r}")
        path, _ = self._media[media_id]
        playable = playable_video(path, self.cache_dir)  # chapters: one proxy of the joined timeline
        videos = [*self.files.reference_chapters, *self.files.new_chapters]
        roots = [*videos, self.cache_dir, *(p for p in map(find_proxy, videos) if p is not None)]
        return confine(playable, roots)

    def run_sql(
        self,
        sql: str,
        max_rows: int,
        *,
        timeout_s: float | None = None,
        cancel: threading.Event | None = None,
    ) -> SqlOut:
        """No catalog in preview mode."""
        raise NotFoundError("no catalog in preview mode; `mtbsync serve --library DIR` has one")

    def close(self) -> None:
        """Nothing to release: every edit is on disk already."""


def _no_publish(event: str, data: dict[str, Any]) -> None:
    return None


def _paths_text(paths: tuple[Path, ...]) -> str | list[str]:
    """A run's files for review.json: the path of one file, the list of a recording's chapters."""
    texts = [str(p.resolve()) for p in paths]
    return texts[0] if len(texts) == 1 else texts


def _marker_out(k: int, m: TransferredMarker) -> MarkerOut:
    return MarkerOut(
        id=k,
        name=m.name,
        t_ref=round(m.t_ref, 4),
        t_new=None if m.t_new is None else round(m.t_new, 4),
        confidence=round(m.confidence, 4),
        needs_review=m.needs_review,
        colour=m.colour,
        comment=m.comment,
    )


def _transferred(m: MarkerOut) -> TransferredMarker:
    comment = m.comment
    if m.moved:
        comment = f"{comment} | placed by hand" if comment else "placed by hand"
    return TransferredMarker(
        m.name, m.t_ref, m.t_new, m.confidence, m.needs_review and not m.reviewed, m.colour, comment
    )


def _stage_event(record: StageRecord, phase: str) -> dict[str, Any]:
    return {"phase": phase, "run_id": RUN_ID, "record": record.to_dict()}


__all__ = ["REFERENCE_ID", "RUN_ID", "PreviewFiles", "PreviewSource"]

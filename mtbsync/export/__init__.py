"""Editor exports of transferred markers: CSV, CMX 3600 EDL, Resolve marker EDL, FCPXML, Premiere XML.

`FORMATS` maps each format's name to its writer; `export_markers` writes one file from markers and
options; `export_markers_file` is what ``mtbsync export`` runs: it reads new_markers.csv, finds the
new video (``--video``, or the ``timewarp.json`` beside the CSV) for its frame rate, duration and
size, and writes the file atomically. Frames and timecode live in `mtbsync.export.timecode`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

from mtbsync.errors import ExportError, MediaError
from mtbsync.export import csv_format, edl, fcpxml, premiere
from mtbsync.export.common import (
    DEFAULT_REEL,
    DEFAULT_START_TIMECODE,
    ExportMarker,
    ExportOptions,
    PreparedMarkers,
    prepare,
)
from mtbsync.export.timecode import FrameRate
from mtbsync.io.files import atomic_write_text
from mtbsync.markers.model import TransferredMarker

log = logging.getLogger("mtbsync")

__all__ = [
    "FORMATS",
    "ExportFormat",
    "ExportMarker",
    "ExportOptions",
    "ExportResult",
    "FrameRate",
    "PreparedMarkers",
    "export_markers",
    "export_markers_file",
    "export_markers_per_chapter",
    "find_new_chapters",
    "find_new_video",
    "options_for_video",
    "prepare",
]


@dataclass(frozen=True)
class ExportFormat:
    """One export format.

    Attributes:
        name: The name on the command line (``resolve-edl``).
        suffix: The file suffix editors expect (``.edl``).
        description: One line for ``--help``.
        render: Markers placed on frames + options -> file text.
        merge_same_frame: The format holds one marker per frame (markers on one frame are merged).
        default_suffix: What `mtbsync export` adds to the markers CSV's name without ``--out``:
            one per format, so that two formats never write over each other (default: ``suffix``).
    """

    name: str
    suffix: str
    description: str
    render: Callable[[PreparedMarkers, ExportOptions], str]
    merge_same_frame: bool = False
    default_suffix: str = ""

    def default_name(self, markers_csv: Path) -> Path:
        """The file an export of ``markers_csv`` writes without ``--out`` (``new_markers.resolve.edl``)."""
        return markers_csv.with_name(markers_csv.stem + (self.default_suffix or self.suffix))


FORMATS: dict[str, ExportFormat] = {
    "csv": ExportFormat(
        "csv",
        ".csv",
        "CSV: name, timecode, frame, seconds, colour, ...",
        csv_format.render,
        default_suffix=".export.csv",
    ),
    "edl": ExportFormat("edl", ".edl", "CMX 3600 EDL with Avid * LOC: locators", edl.render),
    "resolve-edl": ExportFormat(
        "resolve-edl",
        ".edl",
        "DaVinci Resolve marker EDL (Timeline Markers from EDL)",
        partial(edl.render, flavour="resolve"),
        merge_same_frame=True,
        default_suffix=".resolve.edl",
    ),
    "fcpxml": ExportFormat("fcpxml", ".fcpxml", "Final Cut Pro XML 1.10", fcpxml.render),
    "premiere": ExportFormat("premiere", ".xml", "Premiere Pro (FCP 7 XML, xmeml)", premiere.render),
}


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote.

    Attributes:
        path: The file written.
        format: The format's name.
        written: Markers in the file.
        skipped: Markers not placed in the new run, left out.
        clamped: Markers past the video's end, moved to its last frame.
        merged: Markers merged into another on the same frame.
        unknown_colours: Colour texts written as the default colour.
        options: The options used (rate, start timecode, video).
    """

    path: Path
    format: str
    written: int
    skipped: int
    clamped: int
    merged: int
    unknown_colours: tuple[str, ...]
    options: ExportOptions


def export_markers(
    markers: Sequence[TransferredMarker], fmt: str, path: str | Path, options: ExportOptions
) -> ExportResult:
    """Write ``markers`` to ``path`` in format ``fmt``, atomically.

    Args:
        markers: Transferred markers; those not placed are skipped.
        fmt: A key of `FORMATS`.
        path: The file to write.
        options: Rate, start timecode, reel, title, video.

    Returns:
        What was written.

    Raises:
        ExportError: An unknown format, nothing to export, or a value the format cannot hold;
            nothing is written then.
    """
    spec = _format(fmt)
    prepared = prepare(markers, options, merge_same_frame=spec.merge_same_frame)
    path = atomic_write_text(path, spec.render(prepared, options))
    return ExportResult(
        path=path,
        format=spec.name,
        written=len(prepared.markers),
        skipped=prepared.skipped,
        clamped=prepared.clamped,
        merged=prepared.merged,
        unknown_colours=prepared.unknown_colours,
        options=options,
    )


def find_new_video(markers_csv: str | Path) -> Path | None:
    """The new video named by the ``timewarp.json`` beside a markers CSV, if it still exists.

    Args:
        markers_csv: new_markers.csv in a ``mtbsync sync`` output folder.

    Returns:
        The video's path, or None (no or unreadable timewarp.json, no path in it, file gone).
    """
    beside = Path(markers_csv).with_name("timewarp.json")
    try:
        doc = json.loads(beside.read_text(encoding="utf-8"))
        video = Path(doc["meta"]["new"]["path"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return video if video.is_file() else None


def find_new_chapters(markers_csv: str | Path) -> tuple[Path, ...]:
    """The chapter files of a new run recorded in several chapters, as the ``timewarp.json`` beside a
    markers CSV names them (``meta.new.chapters``), when every one still exists.

    Returns:
        The chapters in order; empty for a single-file run, a missing file or no timewarp.json.
    """
    beside = Path(markers_csv).with_name("timewarp.json")
    try:
        doc = json.loads(beside.read_text(encoding="utf-8"))
        chapters = tuple(Path(p) for p in doc["meta"]["new"].get("chapters") or ())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return ()
    return chapters if len(chapters) > 1 and all(p.is_file() for p in chapters) else ()


def options_for_video(chapters: Sequence[Path], info: Any, **overrides: Any) -> ExportOptions:
    """Export options for a new run's video: one file, or a recording of chapters on its joined timeline.

    A recording of several chapters has no one file that is the clip, so the XML formats link none and
    the title says the chapters are joined (editors join them into one clip); `mtbsync export`, the
    preview and the service all follow this rule.

    Args:
        chapters: The run's video files in order (one for most runs).
        info: `io.video.VideoInfo` of the whole run (``probe(chapters)``).
        overrides: Further `ExportOptions` fields (start timecode, reel, title, ...).
    """
    joined = len(chapters) > 1
    fields: dict[str, Any] = {
        "rate": FrameRate.from_fraction(info.fps),
        "title": f"{chapters[0].stem} + {len(chapters) - 1} chapters joined" if joined else chapters[0].stem,
        "video_path": None if joined else Path(chapters[0]).resolve(),
        "video_duration": info.duration if info.duration > 0 else None,
        "video_size": (info.width, info.height),
    }
    fields.update(overrides)
    return ExportOptions(**fields)


def export_markers_file(
    markers_csv: str | Path,
    fmt: str,
    out: str | Path | None = None,
    *,
    fps: str | None = None,
    ndf: bool = False,
    start_timecode: str = DEFAULT_START_TIMECODE,
    reel: str = DEFAULT_REEL,
    video: str | Path | None = None,
    title: str | None = None,
) -> ExportResult:
    """Export a new_markers.csv for an editor (``mtbsync export``).

    The frame rate is ``fps`` when given, else the new video's own rate; the video is ``video``, or
    the one ``timewarp.json`` beside the CSV names (``meta.new.path``) when that file exists. With
    neither a rate nor a video there is no safe default (a wrong rate moves late markers by seconds),
    so it is an error. A new run recorded in chapters (`find_new_chapters`) keeps its joined
    timeline: marker times count from the first chapter's start, the length is the joined one, and
    the clip is named as the joined recording (editors must join the chapters into one clip).

    Args:
        markers_csv: new_markers.csv from ``mtbsync transfer`` / ``sync``.
        fmt: A key of `FORMATS`.
        out: The file to write; default: the CSV's path with the format's own suffix
            (`ExportFormat.default_name`: ``new_markers.edl``, ``new_markers.resolve.edl``,
            ``new_markers.export.csv`` ...).
        fps: Frame rate (``29.97``, ``30000/1001``, ``25``).
        ndf: Non-drop-frame timecode at 29.97 / 59.94 (drop-frame by default there).
        start_timecode: Timecode of the video's first frame on the timeline.
        reel: EDL reel name.
        video: The new video.
        title: Timeline name; default: the video's or the CSV's name.

    Returns:
        What was written.

    Raises:
        MarkerFileError: The CSV is missing or malformed.
        MediaError: ``video`` is missing or not a video.
        ExportError: No frame rate, a bad option, nothing to export.
    """
    from mtbsync.io.video import probe
    from mtbsync.markers.io import read_new_markers

    spec = _format(fmt)
    markers_csv = Path(markers_csv)
    markers = read_new_markers(markers_csv)
    chapters = find_new_chapters(markers_csv) if video is None else ()
    video_path = Path(video) if video is not None else find_new_video(markers_csv)
    info = None
    if chapters:
        try:
            info = probe(chapters)
            video_path = None  # no one file is the joined recording
        except MediaError:
            log.warning("%s (named in timewarp.json) cannot be read; not using them", chapters[0])
            chapters = ()
    if video_path is not None:
        try:
            info = probe(video_path)
        except MediaError:
            if video is not None:
                raise
            log.warning("%s (named in timewarp.json) cannot be read; not using it", video_path)
            video_path = None
    if fps is not None:
        rate = FrameRate.from_string(fps, drop_frame=False if ndf else None)
    elif info is not None:
        rate = FrameRate.from_fraction(info.fps, drop_frame=False if ndf else None)
    else:
        raise ExportError(
            "no frame rate: give --fps (e.g. 29.97) or --video NEW.mp4 "
            "(found no timewarp.json beside the markers naming an existing video)",
            path=markers_csv,
        )
    options = ExportOptions(
        rate=rate,
        start_timecode=start_timecode,
        reel=reel,
        title=title
        or (video_path.stem if video_path is not None else None)
        or (f"{chapters[0].stem} + {len(chapters) - 1} chapters joined" if chapters else markers_csv.stem),
        video_path=video_path,
        video_duration=info.duration if info is not None and info.duration > 0 else None,
        video_size=(info.width, info.height) if info is not None else None,
    )
    if out is None:
        out = spec.default_name(markers_csv)
    if Path(out).resolve() == markers_csv.resolve():
        raise ExportError("the export would overwrite the markers file it reads", path=out)
    return export_markers(markers, spec.name, out, options)


def export_markers_per_chapter(
    markers_csv: str | Path,
    fmt: str,
    out_dir: str | Path | None = None,
    *,
    fps: str | None = None,
    ndf: bool = False,
    start_timecode: str = DEFAULT_START_TIMECODE,
    reel: str = DEFAULT_REEL,
) -> list[ExportResult]:
    """Export the markers of a run recorded in chapters as one file per chapter, each on that
    chapter's own time (editors import the chapter files one by one).

    A marker belongs to the chapter its joined-timeline time falls in; chapters without a placed
    marker get no file. Files are named ``<csv stem>.<chapter stem><suffix>`` in ``out_dir``
    (default: beside the CSV).

    Args:
        markers_csv: new_markers.csv beside the timewarp.json of a chaptered new run.
        fmt: A key of `FORMATS`.
        out_dir: Folder for the files.
        fps: Frame rate; default: each chapter's own.
        ndf: Non-drop-frame timecode at 29.97 / 59.94.
        start_timecode: Timecode of each chapter's first frame.
        reel: EDL reel name.

    Returns:
        What was written, one result per file.

    Raises:
        ExportError: The run is not one of several chapters, or no marker is placed.
        MarkerFileError: The CSV is missing or malformed.
        MediaError: A chapter cannot be read.
    """
    from mtbsync.io.video import probe
    from mtbsync.markers.io import read_new_markers

    spec = _format(fmt)
    markers_csv = Path(markers_csv)
    markers = read_new_markers(markers_csv)
    chapters = find_new_chapters(markers_csv)
    if not chapters:
        raise ExportError(
            "the new run of these markers is not a recording of several chapters "
            "(the timewarp.json beside them names none, or a chapter file is gone)",
            path=markers_csv,
        )
    timeline = probe(chapters).timeline
    out_dir = Path(out_dir) if out_dir is not None else markers_csv.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    suffix = spec.default_suffix or spec.suffix
    by_chapter: dict[int, list[TransferredMarker]] = {}
    for marker in markers:
        if marker.t_new is not None:
            k = timeline.chapter_at(marker.t_new)
            by_chapter.setdefault(k, []).append(replace(marker, t_new=marker.t_new - timeline.starts[k]))
    if not by_chapter:
        raise ExportError("no marker is placed in the new run: nothing to export", path=markers_csv)
    results = []
    for k in sorted(by_chapter):
        chapter = timeline.paths[k]
        info = probe(chapter)
        rate = (
            FrameRate.from_string(fps, drop_frame=False if ndf else None)
            if fps is not None
            else FrameRate.from_fraction(info.fps, drop_frame=False if ndf else None)
        )
        options = ExportOptions(
            rate=rate,
            start_timecode=start_timecode,
            reel=reel,
            title=chapter.stem,
            video_path=chapter,
            video_duration=info.duration if info.duration > 0 else None,
            video_size=(info.width, info.height),
        )
        out = out_dir / f"{markers_csv.stem}.{chapter.stem}{suffix}"
        results.append(export_markers(by_chapter[k], spec.name, out, options))
    return results


def _format(fmt: str) -> ExportFormat:
    spec = FORMATS.get(fmt.strip().lower())
    if spec is None:
        raise ExportError(f"unknown export format {fmt!r} (one of {', '.join(FORMATS)})")
    return spec

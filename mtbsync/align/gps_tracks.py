"""A run's GPS on its video's timeline: the embedded track, or a GPX/FIT track timed against the video.

`resolve_run_gps` decides which track a run is aligned with and how its clock is set; `gps_mode`
says in one phrase which runs had GPS. The alignment with GPS itself is `mtbsync.align.gps`.
"""

from __future__ import annotations

import logging

import numpy as np

from mtbsync.align.gps import GpsAlignConfig, estimate_track_offset, track_speed, visual_motion
from mtbsync.errors import IN_RESULT, MtbsyncError
from mtbsync.features.index import FeatureIndex
from mtbsync.ingest.track import GpsTrack
from mtbsync.io.video import VideoSource, chapter_paths, video_label

log = logging.getLogger("mtbsync")


def resolve_run_gps(
    video: VideoSource,
    index: FeatureIndex,
    track: GpsTrack | None,
    *,
    use_embedded: bool,
    offset_s: float | None,
    label: str,
) -> tuple[GpsTrack | None, list[str]]:
    """One run's GPS on its video's timeline, and notes on where it came from and how it was timed.

    A given track from a GPX/FIT file (absolute times, timed from its first point) gets ``offset_s``
    when given; else its offset is estimated against the video's embedded GPS where that has a fix,
    or against the keyframes' visual motion, and applied only when confident (a low-confidence
    estimate is reported and left out: the track is then assumed to start with the video).
    Without a given track the video's embedded GPS is read when ``use_embedded``.

    Args:
        video: The run's video (one file, or its chapter files: their GPS is joined on the same
            timeline as their frames).
        index: Its keyframe index (for the visual motion).
        track: A track given by the caller, or None.
        use_embedded: Read the GPS embedded in the video (GoPro GPMF).
        offset_s: Offset for a track file, or None to estimate it.
        label: ``"reference"`` or ``"new"`` (for the notes).

    Returns:
        The track (None when there is none with a fix) and the notes.
    """
    notes: list[str] = []
    embedded = None
    if use_embedded and (track is None or track.source in _TRACK_FILE_SOURCES):
        try:
            from mtbsync.ingest.gopro import read_gopro_telemetry, read_gps_from_mp4
        except ImportError:  # the GPMF reader is optional in a partial install
            read_gps_from_mp4 = None
        if read_gps_from_mp4 is not None:
            chapters = chapter_paths(video)
            try:
                if len(chapters) == 1:
                    embedded = read_gps_from_mp4(chapters[0])
                else:
                    # The reader joins the chapters' GPS with the offsets the decoders give frames.
                    joined = read_gopro_telemetry(chapters).gps
                    embedded = joined if joined is not None and joined.has_fix else None
            except MtbsyncError as exc:
                log.info("%s: no embedded GPS read (%s)", video_label(video), exc)
            except Exception as exc:  # a telemetry bug must not cost the alignment
                log.warning(
                    "%s: reading the embedded GPS failed (%s); aligning without it", video_label(video), exc
                )
    if track is None:
        if embedded is None:
            why = "GPS off (--no-gps)" if not use_embedded else "no GPS with a fix in the video"
            notes.append(f"{label}: {why}")
            return None, notes
        notes.append(
            f"{label}: embedded GPS ({embedded.source}, {int(embedded.usable.sum())} usable samples)"
        )
        return embedded, notes
    if not track.has_fix:
        notes.append(f"{label}: the given GPS track has no usable fix")
        return None, notes
    if track.source in _TRACK_FILE_SOURCES:
        if offset_s is not None:
            notes.append(f"{label}: {track.source} track offset {offset_s:+.2f} s (given)")
            return track.shifted(offset_s), notes
        clock = _video_start_utc(embedded) if embedded is not None else None
        if clock is not None and not np.isnat(track.utc[0]):
            # The camera's GPS clock times the video in UTC: the track needs no estimate.
            offset = float((track.utc.min() - clock) / np.timedelta64(1, "us")) / 1e6
            notes.append(f"{label}: {track.source} track offset {offset:+.2f} s from the video's GPS clock")
            return track.shifted(offset), notes
        if embedded is not None:
            signal_t, signal = track_speed(embedded)
            method = "embedded GPS"
        else:
            signal_t, signal = visual_motion(index.times, index.thumbnails)
            method = "visual motion"
        estimate = estimate_track_offset(track, signal_t, signal, method=method, config=GpsAlignConfig())
        if estimate is None:
            notes.append(
                f"{label}: {track.source} track too short to estimate its offset; "
                "assumed to start with the video"
            )
        elif estimate.applied:
            notes.append(f"{label}: {estimate.describe()}")
            return track.shifted(estimate.offset_s), notes
        else:
            log.warning(
                "%s: %s; the track is assumed to start with the video (set --track-offset)",
                video_label(video),
                estimate.describe(),
                extra=IN_RESULT,
            )
            notes.append(
                f"{label}: {estimate.describe()}; assumed to start with the video (set --track-offset)"
            )
    else:
        notes.append(f"{label}: GPS given ({track.source})")
    return track, notes


# Track sources with absolute times only (their offset against the video must be given or estimated).
_TRACK_FILE_SOURCES = ("gpx", "fit")


def _video_start_utc(embedded: GpsTrack) -> np.datetime64 | None:
    """The UTC of the video's t = 0 from its embedded GPS (median over samples with a fix), if known."""
    known = embedded.usable & ~np.isnat(embedded.utc)
    if known.sum() < 3:
        return None
    starts = embedded.utc[known].astype("datetime64[us]").astype(np.int64) - np.round(
        embedded.t[known] * 1e6
    ).astype(np.int64)
    return np.datetime64(int(np.median(starts)), "us")


def gps_mode(reference_gps: GpsTrack | None, new_gps: GpsTrack | None, notes: tuple[str, ...]) -> str:
    """Which runs an alignment has GPS for, in the summary's words.

    Args:
        reference_gps: The reference run's track, or None.
        new_gps: The new run's track, or None.
        notes: `resolve_run_gps`'s notes (the first says why there is none).

    Returns:
        ``"both"``, ``"reference only"``, ``"new only"`` or ``"none: <reason>"``.
    """
    ref_fix = reference_gps is not None and reference_gps.has_fix
    new_fix = new_gps is not None and new_gps.has_fix
    if ref_fix and new_fix:
        return "both"
    if ref_fix or new_fix:
        return "reference only" if ref_fix else "new only"
    if reference_gps is not None or new_gps is not None:
        return "none: GPS never had a fix; aligned by vision alone"
    # The first note says why (e.g. "reference: GPS off (--no-gps)"); the run's label is dropped.
    reason = notes[0].split(": ", 1)[-1] if notes else "no GPS given"
    return f"none: {reason}; aligned by vision alone"

"""GPX tracks (gpxpy) as `GpsTrack`s, and `read_track_file` for any supported track file.

A GPX or FIT file carries absolute UTC times, the video does not (or not reliably), so a track file
is put on the video's timeline as ``t = (utc - anchor) + offset_s``: the anchor is the video's start
in UTC where known, else the track's first point (the track is assumed to start with the video);
``offset_s`` comes from ``--track-offset`` or from `mtbsync.align.gps.estimate_track_offset`.
"""

from __future__ import annotations

import logging
from datetime import UTC
from pathlib import Path

import numpy as np

from mtbsync.errors import TrackFileError
from mtbsync.ingest.track import GpsTrack, make_track

log = logging.getLogger("mtbsync")

TRACK_SUFFIXES = (".gpx", ".fit")


def read_gpx(
    path: str | Path, *, video_start_utc: np.datetime64 | None = None, offset_s: float = 0.0
) -> GpsTrack:
    """Read the timed points of a GPX file (tracks, else routes) as a `GpsTrack`.

    Args:
        path: The .gpx file.
        video_start_utc: The video's first frame in UTC; None: the track's first point is t = 0.
        offset_s: Seconds added to every time (the track's offset against the video).

    Returns:
        The track (source ``"gpx"``), every point counted as a 3D fix.

    Raises:
        TrackFileError: The file is missing, not XML/GPX (the line is named where known), or has no
            timed points.
    """
    import gpxpy
    import gpxpy.gpx

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise TrackFileError(f"cannot read the GPX file ({exc.strerror or exc})", path=path) from None
    if not text.strip():
        raise TrackFileError("the GPX file is empty", path=path)
    try:
        gpx = gpxpy.parse(text)
    except gpxpy.gpx.GPXXMLSyntaxException as exc:
        line = _xml_error_line(exc)
        raise TrackFileError("not a valid GPX file (malformed XML)", path=path, line=line) from None
    except (gpxpy.gpx.GPXException, ValueError) as exc:
        raise TrackFileError(f"not a valid GPX file ({_one_line(exc)})", path=path) from None

    points = [p for trk in gpx.tracks for seg in trk.segments for p in seg.points]
    if not points:
        points = [p for route in gpx.routes for p in route.points]
    if not points:
        raise TrackFileError("the GPX file has no track or route points", path=path)
    timed = [p for p in points if p.time is not None]
    if not timed:
        raise TrackFileError(
            "the GPX file's points have no times (cannot be put on the video's timeline)", path=path
        )
    if len(timed) < len(points):
        log.warning("%s: %d GPX points without a time were skipped", path, len(points) - len(timed))
    utc = np.array([_to_utc64(p.time) for p in timed], dtype="datetime64[us]")
    lat = np.array([p.latitude for p in timed], np.float64)
    lon = np.array([p.longitude for p in timed], np.float64)
    alt = np.array([np.nan if p.elevation is None else p.elevation for p in timed], np.float64)
    speed = np.array([_gpx_speed(p) for p in timed], np.float64)
    if not (np.all(np.abs(lat) <= 90) and np.all(np.abs(lon) <= 180)):
        raise TrackFileError("the GPX file has latitudes or longitudes out of range", path=path)
    return track_from_utc(
        utc, lat, lon, alt=alt, speed=speed, source="gpx", video_start_utc=video_start_utc, offset_s=offset_s
    )


def track_from_utc(
    utc: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    *,
    alt: np.ndarray | None = None,
    speed: np.ndarray | None = None,
    source: str,
    video_start_utc: np.datetime64 | None = None,
    offset_s: float = 0.0,
) -> GpsTrack:
    """A track with absolute times put on the video's timeline: ``t = (utc - anchor) + offset_s``.

    Args:
        utc: datetime64 time of each point.
        lat: Latitudes (degrees).
        lon: Longitudes (degrees).
        alt: Altitudes (m) or None.
        speed: Speeds (m/s) or None.
        source: Source label (``"gpx"``, ``"fit"``).
        video_start_utc: Anchor (the video's start in UTC); None: the first point.
        offset_s: Seconds added to every time.

    Returns:
        The track; its notes say which anchor and offset were used.
    """
    utc = np.asarray(utc, dtype="datetime64[us]")
    anchor = np.datetime64(video_start_utc, "us") if video_start_utc is not None else utc.min()
    t = (utc - anchor).astype(np.float64) / 1e6 + float(offset_s)
    where = (
        "the video's start time" if video_start_utc is not None else "the track's first point at video t=0"
    )
    notes = (f"{source} track timed from {where}, offset {offset_s:+.2f} s",)
    return make_track(t, lat, lon, alt=alt, speed=speed, utc=utc, source=source, notes=notes)


def read_track_file(
    path: str | Path, *, video_start_utc: np.datetime64 | None = None, offset_s: float = 0.0
) -> GpsTrack:
    """Read a .gpx or .fit track file (chosen by suffix) as a `GpsTrack`.

    Args:
        path: The track file.
        video_start_utc: The video's first frame in UTC; None: the track's first point is t = 0.
        offset_s: Seconds added to every time.

    Returns:
        The track.

    Raises:
        TrackFileError: An unsupported suffix, or the file is unreadable or malformed.
    """
    path = Path(path)
    if path.is_dir():
        raise TrackFileError("is a folder, not a track file (.gpx or .fit)", path=path)
    suffix = path.suffix.lower()
    if suffix == ".gpx":
        return read_gpx(path, video_start_utc=video_start_utc, offset_s=offset_s)
    if suffix == ".fit":
        from mtbsync.ingest.fit import read_fit

        return read_fit(path, video_start_utc=video_start_utc, offset_s=offset_s)
    raise TrackFileError(f"unsupported track file type {suffix or '(none)'!r}; use .gpx or .fit", path=path)


def _to_utc64(value) -> np.datetime64:
    """A gpxpy time (aware or naive datetime) as naive UTC datetime64[us]."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return np.datetime64(value, "us")


def _gpx_speed(point) -> float:
    """A point's speed (GPX 1.0 <speed>, or a ``speed`` extension as Garmin and others write it)."""
    if getattr(point, "speed", None) is not None:
        return float(point.speed)
    for ext in getattr(point, "extensions", None) or []:
        for node in ext.iter():
            tag = str(node.tag).rsplit("}", 1)[-1].lower()
            if tag == "speed" and node.text:
                try:
                    return float(node.text)
                except ValueError:
                    return np.nan
    return np.nan


def _xml_error_line(exc: Exception) -> int | None:
    """The 1-based line of an XML syntax error, where the XML library tells it."""
    original = getattr(exc, "original_exception", None) or exc.__cause__ or exc.__context__
    position = getattr(original, "position", None)  # xml.etree ParseError: (line, column)
    if position:
        return int(position[0])
    lineno = getattr(original, "lineno", None)  # lxml XMLSyntaxError
    return int(lineno) if lineno else None


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())[:200]

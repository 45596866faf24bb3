"""Plain records that cross into the catalog.

The store does not import the stages (`ingest`, `align`, ...); callers above it (`library/`) convert
their results into these records, so the catalog's inputs are explicit and stable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class MediaFileRecord:
    """One file of a run on disk: a chapter's video, its LRV proxy or its THM thumbnail.

    Attributes:
        path: Absolute path as found (referenced, never copied).
        role: "video", "proxy" or "thumbnail".
        chapter: 1-based chapter number within the recording.
        size: Size in bytes when ingested.
        identity: Content identity (`io.video.video_identity` for media; same scheme for THM).
        duration_s: Duration of a video/proxy, None for thumbnails or when unreadable.
        width: Frame width, None where not a video.
        height: Frame height, None where not a video.
        fps: Average frame rate, None where not a video.
        codec: Video codec name (h264, hevc, ...), None where not a video.
    """

    path: str
    role: str
    chapter: int
    size: int
    identity: str
    duration_s: float | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    codec: str | None = None


@dataclass(frozen=True)
class IngestedRun:
    """One recording (all its chapters) as the ingest found it.

    Attributes:
        identity: Content identity of the recording (hash over its chapters' identities); the natural
            key that makes a second dump of the same card a no-op.
        name: Display name, e.g. "GX010123" (first chapter's file stem).
        source_dir: Folder the recording was found in.
        started_utc: Absolute start time (from GPS where fixed, else the MP4's creation time), or None.
        duration_s: Total duration over all chapters, None if unknown.
        camera: Camera model where the telemetry names it (e.g. "HERO7 Black").
        media: Every file of the recording.
        gps: GPS samples as a polars DataFrame with `GpsTrack.to_frame()`'s columns (t, utc, lat, lon,
            alt, speed, fix, dop, usable) plus `chapter`, or None without telemetry.
        gps_source: e.g. "gpmf:GPS9", "gpmf:GPS5", "gpx", "fit"; None without GPS.
        hilights_s: Camera HiLight tags (button presses) in seconds on the recording's timeline.
        notes: Problems found while ingesting that did not stop it (no GPS lock, corrupt GPMF, ...).
    """

    identity: str
    name: str
    source_dir: str
    started_utc: datetime | None
    duration_s: float | None
    camera: str | None
    media: tuple[MediaFileRecord, ...]
    gps: Any = None  # polars.DataFrame | None (kept Any so the record imports nothing heavy)
    gps_source: str | None = None
    hilights_s: tuple[float, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

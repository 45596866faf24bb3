"""FIT activity files (fitdecode) as `GpsTrack`s: the ``record`` messages with a position.

Times are put on the video's timeline as for GPX (see `mtbsync.ingest.gpx`).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from mtbsync.errors import TrackFileError
from mtbsync.ingest.gpx import track_from_utc
from mtbsync.ingest.track import GpsTrack

log = logging.getLogger("mtbsync")

_SEMICIRCLE_DEG = 180.0 / 2**31  # FIT stores positions as semicircles (sint32)


def read_fit(
    path: str | Path, *, video_start_utc: np.datetime64 | None = None, offset_s: float = 0.0
) -> GpsTrack:
    """Read the positioned ``record`` messages of a FIT file as a `GpsTrack`.

    Args:
        path: The .fit file.
        video_start_utc: The video's first frame in UTC; None: the first record is t = 0.
        offset_s: Seconds added to every time.

    Returns:
        The track (source ``"fit"``), every record counted as a 3D fix.

    Raises:
        TrackFileError: The file is missing, not FIT, truncated, fails its CRC, or has no positioned
            records.
    """
    import fitdecode
    import fitdecode.exceptions

    path = Path(path)
    if not path.is_file():
        raise TrackFileError("the FIT file does not exist", path=path)
    if path.stat().st_size == 0:
        raise TrackFileError("the FIT file is empty", path=path)
    rows: list[tuple[datetime, float, float, float, float]] = []
    try:
        # A CRC mismatch means the bytes are damaged: positions from them cannot be trusted.
        with fitdecode.FitReader(str(path), check_crc=fitdecode.CrcCheck.RAISE) as reader:
            for frame in reader:
                if not isinstance(frame, fitdecode.FitDataMessage) or frame.name != "record":
                    continue
                stamp = _value(frame, "timestamp")
                lat, lon = _value(frame, "position_lat"), _value(frame, "position_long")
                if not isinstance(stamp, datetime) or lat is None or lon is None:
                    continue
                alt = _value(frame, "enhanced_altitude")
                alt = _value(frame, "altitude") if alt is None else alt
                speed = _value(frame, "enhanced_speed")
                speed = _value(frame, "speed") if speed is None else speed
                rows.append(
                    (
                        stamp,
                        float(lat) * _SEMICIRCLE_DEG,
                        float(lon) * _SEMICIRCLE_DEG,
                        np.nan if alt is None else float(alt),
                        np.nan if speed is None else float(speed),
                    )
                )
    except fitdecode.exceptions.FitError as exc:
        what = " ".join(str(exc).split())[:160]
        raise TrackFileError(f"not a valid FIT file ({type(exc).__name__}: {what})", path=path) from None
    except (OSError, ValueError, KeyError) as exc:
        raise TrackFileError(f"cannot read the FIT file ({exc})", path=path) from None
    if not rows:
        raise TrackFileError("the FIT file has no records with a position", path=path)
    utc = np.array([_to_utc64(r[0]) for r in rows], dtype="datetime64[us]")
    lat = np.array([r[1] for r in rows])
    lon = np.array([r[2] for r in rows])
    return track_from_utc(
        utc,
        lat,
        lon,
        alt=np.array([r[3] for r in rows]),
        speed=np.array([r[4] for r in rows]),
        source="fit",
        video_start_utc=video_start_utc,
        offset_s=offset_s,
    )


def _value(frame, name: str):
    """A field's value, None when the message lacks it or it is invalid."""
    if not frame.has_field(name):
        return None
    return frame.get_value(name, fallback=None)


def _to_utc64(value: datetime) -> np.datetime64:
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return np.datetime64(value, "us")

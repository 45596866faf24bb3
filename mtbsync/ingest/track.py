"""`GpsTrack`: one run's GPS samples on the video's timeline, whatever the source (GPMF, GPX, FIT).

Every reader in `ingest/` returns this one shape, and alignment (`align/gps.py`) consumes it, so the
source of a track never matters past ingest. Times are float seconds on the recording's timeline
(0 = the first frame of the first chapter); absolute UTC is kept beside them where known.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

# Fix kinds as GoPro's GPSF reports them (0 none, 2 = 2D, 3 = 3D); GPX/FIT points count as 3D.
FIX_NONE = 0
FIX_2D = 2
FIX_3D = 3

# A dilution of precision above this (GPSP is DOP x 100 in GPMF; here plain DOP) is too loose to align by.
MAX_USABLE_DOP = 10.0


@dataclass(frozen=True)
class GpsTrack:
    """GPS samples of one run.

    Attributes:
        t: Seconds on the video's timeline, float64, non-decreasing.
        lat: Latitude in degrees (WGS84).
        lon: Longitude in degrees.
        alt: Altitude in metres (NaN where unknown).
        speed: Ground speed in m/s (NaN where unknown).
        fix: Fix kind per sample (`FIX_NONE`, `FIX_2D`, `FIX_3D`), int8.
        dop: Dilution of precision per sample (NaN where unknown).
        utc: Absolute time per sample as datetime64[us] (NaT where unknown).
        source: Where the samples came from, e.g. "gpmf:GPS9", "gpmf:GPS5", "gpx", "fit".
        notes: Problems a rider should know about (no lock, bogus GPSU, offset applied, ...).
    """

    t: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    alt: np.ndarray
    speed: np.ndarray
    fix: np.ndarray
    dop: np.ndarray
    utc: np.ndarray
    source: str
    notes: tuple[str, ...] = field(default_factory=tuple)

    def __len__(self) -> int:
        return int(self.t.shape[0])

    @property
    def usable(self) -> np.ndarray:
        """Boolean mask of samples good enough to align by: a 2D/3D fix, finite position, sane DOP."""
        finite = np.isfinite(self.lat) & np.isfinite(self.lon) & np.isfinite(self.t)
        dop_ok = ~(self.dop > MAX_USABLE_DOP)  # NaN DOP (unknown) counts as acceptable
        nonzero = (self.lat != 0.0) | (self.lon != 0.0)  # cameras write 0,0 before a first fix
        return finite & (self.fix >= FIX_2D) & dop_ok & nonzero

    @property
    def has_fix(self) -> bool:
        """Whether any sample is usable for alignment."""
        return bool(self.usable.any())

    def shifted(self, offset_s: float) -> GpsTrack:
        """The same track with `offset_s` added to every video time (for a GPX/FIT time offset)."""
        # replace() carries every other field over, including any added later.
        return replace(self, t=self.t + offset_s)

    def to_frame(self):  # -> polars.DataFrame (imported lazily: stages do not need polars)
        """The samples as a polars DataFrame (columns t, utc, lat, lon, alt, speed, fix, dop, usable)."""
        import polars as pl

        return pl.DataFrame(
            {
                "t": self.t.astype(np.float64),
                "utc": self.utc.astype("datetime64[us]"),
                "lat": self.lat.astype(np.float64),
                "lon": self.lon.astype(np.float64),
                "alt": self.alt.astype(np.float64),
                "speed": self.speed.astype(np.float64),
                "fix": self.fix.astype(np.int8),
                "dop": self.dop.astype(np.float64),
                "usable": self.usable,
            }
        )


def make_track(
    t,
    lat,
    lon,
    *,
    alt=None,
    speed=None,
    fix=None,
    dop=None,
    utc=None,
    source: str,
    notes: tuple[str, ...] = (),
) -> GpsTrack:
    """Build a `GpsTrack` from sequences, filling unknown columns (NaN / 3D fix / NaT) and sorting by time."""
    t_arr = np.asarray(t, dtype=np.float64)
    n = t_arr.shape[0]

    def column(values, fill, dtype):
        if values is None:
            return np.full(n, fill, dtype=dtype)
        arr = np.asarray(values, dtype=dtype)
        if arr.shape != (n,):
            raise ValueError(f"GPS column has {arr.shape} values for {n} times")
        return arr

    order = np.argsort(t_arr, kind="stable")
    cols = {
        "lat": column(lat, np.nan, np.float64),
        "lon": column(lon, np.nan, np.float64),
        "alt": column(alt, np.nan, np.float64),
        "speed": column(speed, np.nan, np.float64),
        "fix": column(fix, FIX_3D, np.int8),
        "dop": column(dop, np.nan, np.float64),
        "utc": column(utc, np.datetime64("NaT"), "datetime64[us]"),
    }
    return GpsTrack(t=t_arr[order], **{k: v[order] for k, v in cols.items()}, source=source, notes=notes)

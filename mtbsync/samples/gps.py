"""GPS tracks for generated sample pairs: where each run was, as a GPS receiver would have seen it.

The generated trail is a straight corridor in the renderer (arc length is all that matters there);
here it is laid out on the ground as a winding line whose heading swings by up to ~75 degrees, so a
track has bends to project through. Every world seed gets its own place on the map: another trail
(a different-trail pair) lies kilometres away. Positions follow each run's exact arc length, plus a
slowly wandering GPS error (an AR(1) random walk, a few metres) and optional dropouts.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from mtbsync.ingest.track import GpsTrack, make_track
from mtbsync.io.files import atomic_write_text
from mtbsync.samples.synth import SamplePair, plan_pair_runs
from mtbsync.samples.world import TrailWorld

EARTH_RADIUS_M = 6_371_008.8
_BASE_LAT, _BASE_LON = 46.55, 7.98  # somewhere above Interlaken
_LAYOUT_STEP_M = 0.5


def trail_layout(world_seed: int, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Latitude, longitude and altitude of arc lengths ``s`` (m) along the trail of ``world_seed``.

    Returns:
        ``(lat, lon, alt)`` arrays shaped like ``s``.
    """
    rng = np.random.default_rng(int(world_seed) + 7919)
    lat0 = _BASE_LAT + rng.uniform(-0.05, 0.05)
    lon0 = _BASE_LON + rng.uniform(-0.05, 0.05)
    phase, wave = rng.uniform(0, 2 * math.pi), rng.uniform(70.0, 110.0)
    s = np.asarray(s, np.float64)
    top = max(float(np.nanmax(s)) if s.size else 0.0, 0.0) + 10.0
    grid = np.arange(-200.0, top + _LAYOUT_STEP_M, _LAYOUT_STEP_M)
    heading = rng.uniform(0, 2 * math.pi) + 1.3 * np.sin(2 * math.pi * grid / wave + phase)
    x = np.cumsum(np.cos(heading)) * _LAYOUT_STEP_M
    y = np.cumsum(np.sin(heading)) * _LAYOUT_STEP_M
    x -= np.interp(0.0, grid, x)
    y -= np.interp(0.0, grid, y)
    px, py = np.interp(s, grid, x), np.interp(s, grid, y)
    lat = lat0 + np.degrees(py / EARTH_RADIUS_M)
    lon = lon0 + np.degrees(px / (EARTH_RADIUS_M * math.cos(math.radians(lat0))))
    alt = 1500.0 - 0.12 * s  # a gentle descent
    return lat, lon, alt


def _gps_error(n: int, dt: float, sigma_m: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """East/north error (m): AR(1) with a 10 s correlation time and standard deviation ``sigma_m``."""
    rho = math.exp(-dt / 10.0)
    out = np.zeros((2, n))
    out[:, 0] = rng.normal(0.0, sigma_m, 2)
    kick = sigma_m * math.sqrt(1 - rho * rho)
    for k in range(1, n):
        out[:, k] = rho * out[:, k - 1] + rng.normal(0.0, kick, 2)
    return out[0], out[1]


def sample_pair_tracks(
    pair: SamplePair,
    *,
    rate_hz: float = 10.0,
    error_m: float = 2.5,
    dropouts: int = 2,
    seed: int = 0,
) -> tuple[GpsTrack, GpsTrack]:
    """GPS tracks of a generated pair's two runs, on their videos' timelines.

    The runs are planned again from the pair's manifest (cheap: no rendering), so positions follow
    the exact arc lengths the videos show.

    Args:
        pair: A pair from `make_sample_pair` or `make_different_trail_pair`.
        rate_hz: Samples per second.
        error_m: Standard deviation of the wandering GPS error (m).
        dropouts: Gaps of 1-3 s without samples, per run.
        seed: Seed of the GPS error.

    Returns:
        ``(reference, new)`` tracks (source ``"sample"``); UTC times start on arbitrary days.
    """
    manifest = json.loads(Path(pair.manifest).read_text(encoding="utf-8"))
    params = manifest["parameters"]
    world = TrailWorld(int(params["world_seed"]))
    new_world_seed = int(params["new_world_seed"])
    new_world = world if new_world_seed == int(params["world_seed"]) else TrailWorld(new_world_seed)
    ref_run, new_run = plan_pair_runs(params, world, new_world)
    rng = np.random.default_rng(seed)
    tracks = []
    for run, world_seed, day in ((ref_run, int(params["world_seed"]), 3), (new_run, new_world_seed, 17)):
        t = np.arange(0.0, run.duration + 1e-9, 1.0 / rate_hz)
        s = run.arc_length(t)
        # Waiting in the start hut (off the trail): 20 m beside the trail's first metres.
        s_on = np.where(
            run.is_on_trail(t), s, float(s[run.is_on_trail(t)][0]) if run.is_on_trail(t).any() else s
        )
        lat, lon, alt = trail_layout(world_seed, s_on)
        ex, ey = _gps_error(t.size, 1.0 / rate_hz, error_m, rng)
        ex = ex + np.where(run.is_on_trail(t), 0.0, 20.0)
        lat = lat + np.degrees(ey / EARTH_RADIUS_M)
        lon = lon + np.degrees(ex / (EARTH_RADIUS_M * math.cos(math.radians(float(lat[0])))))
        keep = np.ones(t.size, bool)
        for _ in range(dropouts):
            start = rng.uniform(0.2, 0.8) * run.duration
            keep &= ~((t >= start) & (t < start + rng.uniform(1.0, 3.0)))
        utc0 = np.datetime64(f"2024-06-{day:02d}T10:00:00", "us")
        utc = utc0 + (t * 1e6).astype("timedelta64[us]")
        tracks.append(
            make_track(
                t[keep],
                lat[keep],
                lon[keep],
                alt=alt[keep],
                utc=utc[keep],
                source="sample",
                notes=("generated GPS: exact arc length plus a wandering error",),
            )
        )
    return tracks[0], tracks[1]


def write_gpx(path: str | Path, track: GpsTrack, *, name: str = "track") -> Path:
    """Write a track's timed positions as GPX 1.1 (atomically).

    Args:
        path: The .gpx file to write.
        track: The track (its ``utc`` times are written; NaT samples are skipped).
        name: Track name.

    Returns:
        The path.
    """
    import gpxpy.gpx

    gpx = gpxpy.gpx.GPX()
    gpx.creator = "mtbsync samples (synthetic)"
    trk = gpxpy.gpx.GPXTrack(name=name)
    seg = gpxpy.gpx.GPXTrackSegment()
    for k in range(len(track)):
        if np.isnat(track.utc[k]):
            continue
        micros = int(track.utc[k].astype("datetime64[us]").astype(np.int64))
        when = datetime.fromtimestamp(micros / 1e6, tz=UTC)
        ele = None if not np.isfinite(track.alt[k]) else round(float(track.alt[k]), 2)
        seg.points.append(
            gpxpy.gpx.GPXTrackPoint(
                round(float(track.lat[k]), 7), round(float(track.lon[k]), 7), elevation=ele, time=when
            )
        )
    trk.segments.append(seg)
    gpx.tracks.append(trk)
    return atomic_write_text(path, gpx.to_xml(version="1.1"), replace_media=True)

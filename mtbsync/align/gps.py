"""GPS-assisted alignment: position along the trail as a coarse map between two runs.

Both runs' GPS tracks are projected onto the reference run's path (local tangent-plane metres,
smoothed, resampled by arc length). The projection is a monotone dynamic programme over path nodes,
so a switchback or a loop where the trail passes close to itself cannot make the position jump
ahead or back. That gives the arc length reached at each moment, s_ref(t_ref) and s_new(t_new), hence
a coarse map t_new -> t_ref = s_ref^-1(s_new(t_new)) with an uncertainty of about the GPS error over
the reference's speed there. Time or raw cumulative distance are never compared: a new run that
starts further down the trail, stops, or rides another line still maps by place.

Vision stays in charge: the map is first moved in time onto the keyframes that look alike
(`calibrate_mapping`: a track's clock or offset may be off by seconds); it then only narrows which
keyframe pairs are examined (`band_mask`), fills long stretches where vision found nothing
(`fill_gaps`, at a confidence that asks for review), and counts as evidence against an alignment
when the two tracks lie far apart (different trails).

Also here: stop intervals from speed (cues when only one run has GPS), the visual motion signal of a
video's keyframes, and the estimation of a track file's time offset against the video
(`estimate_track_offset`). Everything is a pure function of arrays and `GpsTrack`s.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter1d

from mtbsync.align.fit import confidence_segments
from mtbsync.align.warp import Warp
from mtbsync.config import SyncConfig
from mtbsync.errors import IN_RESULT
from mtbsync.features.index import FeatureIndex
from mtbsync.ingest.track import GpsTrack

log = logging.getLogger("mtbsync")

EARTH_RADIUS_M = 6_371_008.8


@dataclass(frozen=True)
class GpsAlignConfig:
    """Parameters of GPS-assisted alignment.

    Attributes:
        sigma_m: Typical GPS position error (m), consumer receivers 2-5 m.
        node_spacing_m: Spacing of the reference path's nodes (m).
        smooth_s: Gaussian smoothing of positions in time (s) before the path is built.
        grid_dt: Time step of the projection (s).
        max_speed: Fastest plausible riding speed (m/s): how far the projection may advance per step.
        same_trail_m: Within this distance of the reference path a sample counts as on the same trail.
        min_same_trail_frac: Fewer of the new run's samples than this on the reference's trail, and
            those covering less than ``min_path_coverage`` of its path, means different trails.
        min_path_coverage: See ``min_same_trail_frac``.
        min_overlap_s: Less shared trail than this (seconds of new run) gives no GPS map.
        band_min_s: Half width of the candidate band at least (s of reference time).
        band_sigmas: Half width of the band in map uncertainties.
        stop_speed: Below this speed (m/s) the rider stands.
        min_stop_s: A stop lasts at least this long (s).
        fill_confidence: Confidence of knots GPS fills in (below the review level on purpose).
        min_offset_confidence: An estimated track offset below this confidence is not applied.
    """

    sigma_m: float = 4.0
    node_spacing_m: float = 1.0
    smooth_s: float = 0.5
    grid_dt: float = 0.5
    max_speed: float = 25.0
    same_trail_m: float = 30.0
    min_same_trail_frac: float = 0.3
    min_path_coverage: float = 0.25
    min_overlap_s: float = 3.0
    band_min_s: float = 2.0
    band_sigmas: float = 3.0
    stop_speed: float = 1.0
    min_stop_s: float = 1.0
    fill_confidence: float = 0.35
    min_offset_confidence: float = 0.5


# --------------------------------------------------------------------------------------------------
# Geometry


def local_metres(
    lat: np.ndarray, lon: np.ndarray, origin: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """East/north metres of positions in the tangent plane at ``origin`` (lat, lon), equirectangular.

    Exact to well under a metre over the few kilometres of a trail.
    """
    lat0, lon0 = origin
    x = np.radians(np.asarray(lon, np.float64) - lon0) * EARTH_RADIUS_M * math.cos(math.radians(lat0))
    y = np.radians(np.asarray(lat, np.float64) - lat0) * EARTH_RADIUS_M
    return x, y


def _resample(track: GpsTrack, dt: float, max_gap_s: float = 5.0) -> tuple[np.ndarray, ...]:
    """Usable samples on a regular time grid: t, lat, lon and whether a real sample is near."""
    use = track.usable
    t, lat, lon = track.t[use], track.lat[use], track.lon[use]
    if t.size < 2:
        return np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0, bool)
    t, first = np.unique(t, return_index=True)
    lat, lon = lat[first], lon[first]
    grid = np.arange(t[0], t[-1] + 1e-9, dt)
    # A grid time inside a long dropout is interpolated but carries no evidence of its own.
    nxt = np.clip(np.searchsorted(t, grid), 1, t.size - 1)
    gap = t[nxt] - t[nxt - 1]
    valid = gap <= max_gap_s
    return grid, np.interp(grid, t, lat), np.interp(grid, t, lon), valid


@dataclass(frozen=True)
class TrailPath:
    """The reference run's path: nodes every ``node_spacing_m`` along the smoothed track.

    Attributes:
        x: East (m) of each node in the tangent plane at ``origin``.
        y: North (m).
        s: Arc length (m) of each node, from 0.
        origin: (lat, lon) of the tangent plane.
    """

    x: np.ndarray
    y: np.ndarray
    s: np.ndarray
    origin: tuple[float, float]

    def __len__(self) -> int:
        return int(self.s.shape[0])

    @property
    def length(self) -> float:
        """Length of the path (m)."""
        return float(self.s[-1]) if self.s.size else 0.0


def reference_path(track: GpsTrack, config: GpsAlignConfig = GpsAlignConfig()) -> TrailPath:
    """The trail as the reference run rode it: usable samples, smoothed in time, resampled by arc length.

    Light smoothing, then a vertex only every half GPS error of movement, keeps the jitter of a stop
    from adding distance that is not there.

    Args:
        track: The reference run's GPS.
        config: Parameters.

    Returns:
        The path (empty when the track has fewer than two usable samples).
    """
    grid, lat, lon, _ = _resample(track, config.grid_dt)
    if grid.size < 2:
        return TrailPath(np.zeros(0), np.zeros(0), np.zeros(0), (0.0, 0.0))
    origin = (float(np.median(lat)), float(np.median(lon)))
    x, y = local_metres(lat, lon, origin)
    sigma = max(config.smooth_s / config.grid_dt, 0.0)
    if sigma > 0:
        x, y = gaussian_filter1d(x, sigma, mode="nearest"), gaussian_filter1d(y, sigma, mode="nearest")
    # A vertex only once the rider has moved half the GPS error from the last one: the jitter of a
    # stop adds no distance, and (unlike heavy smoothing) hairpins keep their length.
    gate = 0.5 * config.sigma_m
    kept = [0]
    for k in range(1, x.size):
        if math.hypot(x[k] - x[kept[-1]], y[k] - y[kept[-1]]) >= gate:
            kept.append(k)
    if kept[-1] != x.size - 1 and math.hypot(x[-1] - x[kept[-1]], y[-1] - y[kept[-1]]) > 0.25 * gate:
        kept.append(x.size - 1)
    x, y = x[kept], y[kept]
    seg = np.hypot(np.diff(x), np.diff(y))
    s = np.concatenate([[0.0], np.cumsum(seg)])
    if x.size < 2 or s[-1] <= config.node_spacing_m:
        return TrailPath(x[:1], y[:1], np.zeros(1), origin)
    nodes = np.arange(0.0, s[-1] + 1e-9, config.node_spacing_m)
    return TrailPath(np.interp(nodes, s, x), np.interp(nodes, s, y), nodes, origin)


@dataclass(frozen=True)
class Projection:
    """A track projected onto a `TrailPath`.

    Attributes:
        t: Grid times (s, the track's video timeline).
        s: Arc length along the path reached at each time (m), non-decreasing.
        distance: Distance from the path (m) at each time.
        valid: Whether a real GPS sample lies near each time (not a long dropout).
    """

    t: np.ndarray
    s: np.ndarray
    distance: np.ndarray
    valid: np.ndarray


def project_track(path: TrailPath, track: GpsTrack, config: GpsAlignConfig = GpsAlignConfig()) -> Projection:
    """Project a track onto the path, monotone in arc length (no jumps across switchbacks or loops).

    A Viterbi pass over the path's nodes: each time step may advance 0 to ``max_speed * grid_dt``
    metres; the cost of a node is the squared distance to it in units of the GPS error, capped so
    that a sample far off the trail neither pulls nor breaks the path. The best node is refined to
    the nearest point of its adjacent segments.

    Args:
        path: The reference path.
        track: The track to project (usable samples only).
        config: Parameters.

    Returns:
        The projection (empty when the track or the path has too few samples).
    """
    grid, lat, lon, valid = _resample(track, config.grid_dt)
    n_nodes = len(path)
    if grid.size == 0 or n_nodes < 2:
        return Projection(np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0, bool))
    px, py = local_metres(lat, lon, path.origin)
    sigma = 0.5 * config.smooth_s / config.grid_dt
    if sigma > 0 and px.size > 1:
        px, py = gaussian_filter1d(px, sigma, mode="nearest"), gaussian_filter1d(py, sigma, mode="nearest")
    max_step = max(1, math.ceil(config.max_speed * config.grid_dt / config.node_spacing_m))
    cap = 0.5 * (config.same_trail_m / config.sigma_m) ** 2
    nx, ny = path.x.astype(np.float32), path.y.astype(np.float32)
    n = grid.size
    back = np.zeros((n, n_nodes), np.int8 if max_step < 127 else np.int16)  # memory: rows x nodes
    total = np.zeros(n_nodes)
    for i in range(n):
        d2 = (nx - np.float32(px[i])) ** 2 + (ny - np.float32(py[i])) ** 2
        cost = np.minimum(d2 / (2 * config.sigma_m**2), cap) if valid[i] else np.zeros(n_nodes)
        if i == 0:
            total = cost.astype(np.float64)
            continue
        best = total.copy()
        step = np.zeros(n_nodes, back.dtype)
        for k in range(1, max_step + 1):
            shifted = np.full(n_nodes, np.inf)
            shifted[k:] = total[:-k]
            better = shifted < best
            best[better] = shifted[better]
            step[better] = k
        total = best + cost
        back[i] = step
    node = np.empty(n, np.int64)
    node[-1] = int(np.argmin(total))
    for i in range(n - 1, 0, -1):
        node[i - 1] = node[i] - back[i, node[i]]
    s, dist = _refine_on_segments(path, node, px, py)
    return Projection(grid, np.maximum.accumulate(s), dist, valid)


def _refine_on_segments(
    path: TrailPath, node: np.ndarray, px: np.ndarray, py: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Arc length and distance of each point on the nearer of the two segments beside its node."""
    best_s = path.s[node].astype(np.float64)
    best_d = np.hypot(px - path.x[node], py - path.y[node])
    last = len(path) - 1
    for a_idx in (np.maximum(node - 1, 0), np.minimum(node, last - 1)):
        b_idx = a_idx + 1
        ax, ay, bx, by = path.x[a_idx], path.y[a_idx], path.x[b_idx], path.y[b_idx]
        vx, vy = bx - ax, by - ay
        length2 = np.maximum(vx * vx + vy * vy, 1e-12)
        u = np.clip(((px - ax) * vx + (py - ay) * vy) / length2, 0.0, 1.0)
        d = np.hypot(px - (ax + u * vx), py - (ay + u * vy))
        closer = d < best_d
        best_s[closer] = (path.s[a_idx] + u * (path.s[b_idx] - path.s[a_idx]))[closer]
        best_d[closer] = d[closer]
    return best_s, best_d


# --------------------------------------------------------------------------------------------------
# The coarse map between two runs


@dataclass(frozen=True)
class GpsMapping:
    """The coarse map new-run time -> reference time by position along the trail.

    Attributes:
        t_new: Grid times of the new run (s).
        t_ref: Reference time at the same place (NaN where there is none).
        sigma: Uncertainty of ``t_ref`` (s).
        valid: Where the map holds (both runs' GPS there, the new run on the reference's trail).
        distance: The new run's distance from the reference path (m).
        same_trail: Whether the runs ride the same trail as far as GPS can tell.
        near_fraction: Share of the new run's samples within ``same_trail_m`` of the reference path.
        median_distance_m: Median distance of the new run from the reference path.
        path_length_m: Length of the reference path (m).
    """

    t_new: np.ndarray
    t_ref: np.ndarray
    sigma: np.ndarray
    valid: np.ndarray
    distance: np.ndarray
    same_trail: bool
    near_fraction: float
    median_distance_m: float
    path_length_m: float

    @property
    def overlap_s(self) -> float:
        """Seconds of the new run the map covers."""
        if self.t_new.size < 2:
            return 0.0
        return float(self.valid.sum() * np.median(np.diff(self.t_new)))

    def at(self, t_new: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The map at arbitrary new-run times: (t_ref, sigma, valid) from the nearest grid time."""
        t_new = np.asarray(t_new, np.float64)
        if self.t_new.size == 0:
            nan = np.full(t_new.shape, np.nan)
            return nan, nan, np.zeros(t_new.shape, bool)
        if self.t_new.size == 1:
            k = np.zeros(t_new.shape, np.int64)
            step = 1.0
        else:
            step = float(np.median(np.diff(self.t_new)))
            k = np.clip(np.searchsorted(self.t_new, t_new), 1, self.t_new.size - 1)
            k = np.where(np.abs(self.t_new[k - 1] - t_new) <= np.abs(self.t_new[k] - t_new), k - 1, k)
        inside = np.abs(self.t_new[k] - t_new) <= step
        valid = self.valid[k] & inside
        t_ref = np.where(valid, np.interp(t_new, self.t_new, np.nan_to_num(self.t_ref)), np.nan)
        return t_ref, np.where(valid, self.sigma[k], np.nan), valid

    def summary(self) -> dict[str, Any]:
        """Figures for the alignment summary (JSON-ready)."""
        sig = self.sigma[self.valid]
        return {
            "same_trail": bool(self.same_trail),
            "near_fraction": round(float(self.near_fraction), 3),
            "median_distance_m": round(float(self.median_distance_m), 2),
            "path_length_m": round(float(self.path_length_m), 1),
            "overlap_s": round(self.overlap_s, 2),
            "map_sigma_s_median": round(float(np.median(sig)), 3) if sig.size else None,
        }


def gps_mapping(reference: GpsTrack, new: GpsTrack, config: GpsAlignConfig = GpsAlignConfig()) -> GpsMapping:
    """Map the new run's times to the reference's by position along the reference's path.

    Args:
        reference: The reference run's GPS (on its video timeline).
        new: The new run's GPS (on its video timeline).
        config: Parameters.

    Returns:
        The map; ``same_trail`` false (and no valid times) when the tracks lie far apart.
    """
    path = reference_path(reference, config)
    ref_proj = project_track(path, reference, config)
    new_proj = project_track(path, new, config)
    empty = GpsMapping(
        np.zeros(0),
        np.zeros(0),
        np.zeros(0),
        np.zeros(0, bool),
        np.zeros(0),
        False,
        0.0,
        math.inf,
        path.length,
    )
    if ref_proj.t.size < 2 or new_proj.t.size == 0:
        return empty
    on_trail = new_proj.distance <= config.same_trail_m
    counted = new_proj.valid if new_proj.valid.any() else np.ones(new_proj.t.size, bool)
    near_fraction = float(on_trail[counted].mean())
    median_distance = float(np.median(new_proj.distance[counted]))
    # A new run may spend most of its video elsewhere (the climb to the trailhead): it still rides the
    # reference's trail when its near samples cover a good part of the path.
    near_s = new_proj.s[on_trail & counted]
    path_coverage = float(np.ptp(near_s)) / path.length if near_s.size and path.length > 0 else 0.0
    same_trail = near_fraction >= config.min_same_trail_frac or path_coverage >= config.min_path_coverage

    # s_ref is non-decreasing; where the reference stood (flat s) the inverse takes the middle of the
    # stand and the uncertainty grows by half its length.
    s_ref, t_ref_grid = ref_proj.s, ref_proj.t
    moved = np.concatenate([[True], np.diff(s_ref) > 0.05 * config.node_spacing_m])
    starts = np.nonzero(moved)[0]
    ends = np.concatenate([starts[1:] - 1, [s_ref.size - 1]])
    knot_s = s_ref[starts]
    knot_t = 0.5 * (t_ref_grid[starts] + t_ref_grid[ends])
    knot_half = 0.5 * (t_ref_grid[ends] - t_ref_grid[starts])
    speed_ref = np.gradient(s_ref, t_ref_grid) if s_ref.size > 1 else np.ones(1)
    speed_ref = gaussian_filter1d(speed_ref, max(1.0, 1.0 / config.grid_dt), mode="nearest")

    s_new = new_proj.s
    inside = (s_new >= knot_s[0] - config.sigma_m) & (s_new <= knot_s[-1] + config.sigma_m)
    valid = new_proj.valid & on_trail & inside & same_trail
    t_map = np.where(valid, np.interp(s_new, knot_s, knot_t), np.nan)
    v_at = np.interp(np.nan_to_num(t_map), t_ref_grid, speed_ref)
    stand = np.interp(s_new, knot_s, knot_half)
    sigma = math.sqrt(2.0) * config.sigma_m / np.maximum(v_at, 1.0) + stand
    if valid.sum() * config.grid_dt < config.min_overlap_s:
        valid = np.zeros_like(valid)
    return GpsMapping(
        t_new=new_proj.t,
        t_ref=t_map,
        sigma=sigma,
        valid=valid,
        distance=new_proj.distance,
        same_trail=same_trail,
        near_fraction=near_fraction,
        median_distance_m=median_distance,
        path_length_m=path.length,
    )


def band_mask(
    mapping: GpsMapping,
    new_times: np.ndarray,
    ref_times: np.ndarray,
    config: GpsAlignConfig = GpsAlignConfig(),
) -> tuple[np.ndarray, np.ndarray]:
    """Which (new keyframe, reference keyframe) pairs the GPS map allows.

    Args:
        mapping: The coarse map.
        new_times: (n_new,) new keyframe times.
        ref_times: (n_ref,) reference keyframe times.
        config: Parameters (band width).

    Returns:
        ``(allowed, has_gps)``: (n_new, n_ref) bool, and (n_new,) whether GPS constrains that row;
        rows without GPS allow every pair (vision alone decides there).
    """
    t_ref, sigma, has = mapping.at(np.asarray(new_times, np.float64))
    half = np.maximum(config.band_min_s, config.band_sigmas * np.nan_to_num(sigma, nan=0.0))
    ref_times = np.asarray(ref_times, np.float64)
    allowed = np.abs(ref_times[None, :] - np.nan_to_num(t_ref)[:, None]) <= half[:, None]
    allowed[~has] = True
    return allowed, has


def fill_gaps(
    warp: Warp, mapping: GpsMapping, *, gap_s: float = 2.0, config: GpsAlignConfig = GpsAlignConfig()
) -> tuple[Warp, int]:
    """Fill long stretches between verified knots with the GPS map, never moving a verified knot.

    Inside a gap longer than ``gap_s`` (where the fit put a zero-confidence midpoint), GPS knots are
    added at ``fill_confidence``, squeezed between the gap's verified neighbours so the warp stays
    monotone. Outside the verified range nothing is added: GPS does not extend the alignment.

    Args:
        warp: The fitted warp.
        mapping: The coarse map.
        gap_s: Shortest gap to fill (s of new-run time).
        config: Parameters.

    Returns:
        The warp (a new one when knots were added) and the number of knots added.
    """
    if not warp.ok or warp.t_new.size < 2 or not mapping.valid.any():
        return warp, 0
    solid = warp.confidence > 0
    tn, tr = warp.t_new[solid], warp.t_ref[solid]
    add_n, add_r = [], []
    for a in np.nonzero(np.diff(tn) > gap_s)[0]:
        lo, hi = tn[a], tn[a + 1]
        inside = mapping.valid & (mapping.t_new > lo + 0.5) & (mapping.t_new < hi - 0.5)
        if not inside.any():
            continue
        t_new_gap = mapping.t_new[inside]
        t_ref_gap = np.clip(np.maximum.accumulate(mapping.t_ref[inside]), tr[a], tr[a + 1])
        add_n.append(t_new_gap)
        add_r.append(t_ref_gap)
    if not add_n:
        return warp, 0
    # The zero-confidence midpoints the fit put in the filled gaps give way to the GPS knots.
    drop = np.zeros(warp.t_new.size, bool)
    for t_gap in add_n:
        drop |= ~solid & (warp.t_new > t_gap[0] - 0.5) & (warp.t_new < t_gap[-1] + 0.5)
    keep = ~drop
    n_new = np.concatenate([warp.t_new[keep], *add_n])
    n_ref = np.concatenate([warp.t_ref[keep], *add_r])
    added = int(sum(a.size for a in add_n))
    n_conf = np.concatenate([warp.confidence[keep], np.full(added, config.fill_confidence)])
    order = np.argsort(n_new, kind="stable")
    n_new, n_ref, n_conf = n_new[order], np.maximum.accumulate(n_ref[order]), n_conf[order]
    n_new, first = np.unique(n_new, return_index=True)
    n_ref, n_conf = n_ref[first], n_conf[first]
    metrics = dict(warp.metrics)
    metrics["segments"] = confidence_segments(n_new, n_ref, n_conf)
    metrics["mean_confidence"] = round(float(n_conf.mean()), 4)
    filled = Warp(
        n_new,
        n_ref,
        n_conf,
        ok=warp.ok,
        reason=warp.reason,
        metrics=metrics,
        gates=warp.gates,
        meta=dict(warp.meta),
    )
    return filled, added


# Confidence of a warp from GPS alone: under the review threshold, so every marker asks to be checked.
GPS_ONLY_CONFIDENCE = 0.3


def gps_only_warp(
    mapping: GpsMapping,
    vision: Warp,
    *,
    new_duration: float,
    ref_duration: float,
    min_coverage: float,
    config: GpsAlignConfig = GpsAlignConfig(),
) -> Warp | None:
    """The last resort: a warp from position along the trail alone, when vision verified too little.

    Built only when both tracks ride the same trail over enough of the runs (``min_coverage`` of the
    shorter run, as the vision gate asks). Its knots are the GPS map (kept monotone), at a confidence
    under the review threshold; ``metrics["model"]`` is ``gps`` and ``metrics["accuracy_s"]`` the
    map's median uncertainty, so the summary and timewarp.json can say how far to trust it.

    Args:
        mapping: The GPS map of the two runs.
        vision: The vision warp that did not pass its gates (its reason is kept).
        new_duration: Length of the new run (s).
        ref_duration: Length of the reference run (s).
        min_coverage: Smallest covered share of the shorter run.
        config: Parameters.

    Returns:
        The warp, or None when GPS cannot align the runs either.
    """
    if not mapping.same_trail or not mapping.valid.any():
        return None
    t_new = mapping.t_new[mapping.valid]
    t_ref = np.maximum.accumulate(mapping.t_ref[mapping.valid])
    sigma = mapping.sigma[mapping.valid]
    t_new, first = np.unique(t_new, return_index=True)
    t_ref, sigma = t_ref[first], sigma[first]
    if t_new.size < 2:
        return None
    cov_new = (t_new[-1] - t_new[0]) / max(new_duration, 1e-9)
    cov_ref = (t_ref[-1] - t_ref[0]) / max(ref_duration, 1e-9)
    if max(cov_new, cov_ref) < min_coverage:
        return None
    confidence = np.full(t_new.size, GPS_ONLY_CONFIDENCE)
    accuracy = float(np.median(sigma))
    metrics = dict(vision.metrics)
    metrics.update(
        model="gps",
        vision_reason=vision.reason,
        accuracy_s=round(accuracy, 3),
        coverage_new=round(float(cov_new), 4),
        coverage_ref=round(float(cov_ref), 4),
        mean_confidence=GPS_ONLY_CONFIDENCE,
        segments=confidence_segments(t_new, t_ref, confidence),
        verified_ref_range=[round(float(t_ref[0]), 4), round(float(t_ref[-1]), 4)],
    )
    reason = (
        f"aligned by GPS alone (position along the trail, about +-{accuracy:.1f} s): vision verified "
        f"too little ({vision.reason or 'no consistent path'}); every marker needs review"
    )
    return Warp(
        t_new,
        t_ref,
        confidence,
        ok=True,
        reason=reason,
        metrics=metrics,
        gates=dict(vision.gates),
        meta=dict(vision.meta),
    )


def gps_last_resort(
    mapping: GpsMapping, vision: Warp, *, new_duration: float, ref_duration: float, min_coverage: float
) -> Warp | None:
    """Where vision verified too little but both runs' GPS rides the same trail, align by GPS alone.

    Args:
        mapping: The GPS map of the two runs.
        vision: The vision warp that did not pass its gates.
        new_duration: Length of the new run (s).
        ref_duration: Length of the reference run (s).
        min_coverage: Smallest covered share of the shorter run.

    Returns:
        `gps_only_warp`'s warp with ``meta["model"]`` ``gps`` and the reason in
        ``meta["model_reason"]`` (its reason is logged as a warning that goes into the result), or
        None when GPS cannot align the runs either.
    """
    warp = gps_only_warp(
        mapping, vision, new_duration=new_duration, ref_duration=ref_duration, min_coverage=min_coverage
    )
    if warp is None:
        return None
    warp.meta["model"] = "gps"
    warp.meta["model_reason"] = (
        f"vision did not align the runs ({vision.reason}); GPS puts both on the same trail, so it "
        "aligns them by position along the trail"
    )
    log.warning("%s", warp.reason, extra=IN_RESULT)
    return warp


def gps_fallback(
    mapping: GpsMapping, vision: Warp, new: FeatureIndex, ref: FeatureIndex, config: SyncConfig
) -> Warp:
    """`gps_last_resort` for two keyframe indexes: the GPS warp, or ``vision`` where GPS cannot align.

    Args:
        mapping: The GPS map of the two runs.
        vision: The vision warp that did not pass its gates.
        new: The new run's keyframe index (its video's duration).
        ref: The reference run's keyframe index (its video's duration).
        config: Parameters (``config.gates.min_coverage``).

    Returns:
        `gps_last_resort`'s warp, or ``vision`` unchanged when it gives none.
    """
    warp = gps_last_resort(
        mapping,
        vision,
        new_duration=float(new.video.get("duration") or 0.0),
        ref_duration=float(ref.video.get("duration") or 0.0),
        min_coverage=config.gates.min_coverage,
    )
    return warp or vision


# --------------------------------------------------------------------------------------------------
# One run only: speed and stops


def track_speed(track: GpsTrack, *, smooth_s: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Speed (m/s) of the usable samples: the recorded speed where known, else from positions.

    Returns:
        ``(t, speed)`` of the usable samples.
    """
    use = track.usable
    t = track.t[use]
    if t.size < 2:
        return t, np.zeros(t.size)
    recorded = track.speed[use]
    if np.isfinite(recorded).mean() > 0.8:
        return t, np.interp(t, t[np.isfinite(recorded)], recorded[np.isfinite(recorded)])
    x, y = local_metres(track.lat[use], track.lon[use], (float(track.lat[use][0]), float(track.lon[use][0])))
    t, first = np.unique(t, return_index=True)
    x, y = x[first], y[first]
    # Displacement over a window of ``2 * smooth_s``, not a sample-to-sample derivative: GPS jitter of
    # a few metres would otherwise look like riding while the rider stands.
    half = max(smooth_s, 1e-3)
    xa, ya = np.interp(t - half, t, x), np.interp(t - half, t, y)
    xb, yb = np.interp(t + half, t, x), np.interp(t + half, t, y)
    span = np.minimum(t + half, t[-1]) - np.maximum(t - half, t[0])
    speed = np.hypot(xb - xa, yb - ya) / np.maximum(span, 1e-3)
    return t, speed


def stop_intervals(track: GpsTrack, config: GpsAlignConfig = GpsAlignConfig()) -> list[tuple[float, float]]:
    """Where the rider stood still: intervals (s) with speed below ``stop_speed`` for ``min_stop_s``.

    Returns:
        ``[(start, end), ...]`` on the track's video timeline.
    """
    t, speed = track_speed(track)
    if t.size < 2:
        return []
    # GPS jitter reads as a metre or two per second while standing: the threshold follows the run's
    # typical pace, but never drops below ``stop_speed``.
    moving = speed[speed > config.stop_speed]
    threshold = max(config.stop_speed, 0.2 * float(np.median(moving))) if moving.size else config.stop_speed
    slow = speed < threshold
    out = []
    k = 0
    while k < t.size:
        if not slow[k]:
            k += 1
            continue
        j = k
        while j + 1 < t.size and slow[j + 1]:
            j += 1
        if t[j] - t[k] >= config.min_stop_s:
            out.append((float(t[k]), float(t[j])))
        k = j + 1
    return out


def flatten_stops(
    t_new: np.ndarray, t_ref: np.ndarray, stops: list[tuple[float, float]], *, margin_s: float = 0.3
) -> tuple[np.ndarray, int]:
    """While the new rider stands, the reference place cannot move: pairs inside a new-run stop all
    take the median reference time of that stop's pairs.

    Returns:
        The adjusted reference times and the number of pairs changed.
    """
    t_ref = np.asarray(t_ref, np.float64).copy()
    changed = 0
    for a, b in stops:
        inside = (t_new >= a + margin_s) & (t_new <= b - margin_s) & np.isfinite(t_ref)
        if inside.sum() >= 2:
            level = float(np.median(t_ref[inside]))
            changed += int((np.abs(t_ref[inside] - level) > 1e-9).sum())
            t_ref[inside] = level
    return t_ref, changed


# --------------------------------------------------------------------------------------------------
# Time offset of a track file against the video


def visual_motion(times: np.ndarray, thumbnails: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """How much the picture changes between consecutive keyframes (mean absolute grey difference).

    A forward-moving camera's picture changes faster the faster the rider goes, and hardly at all
    while standing: the signal a track's speed is correlated with to find its time offset.

    Returns:
        ``(t, motion)`` at the midpoints between keyframes.
    """
    times = np.asarray(times, np.float64)
    if times.size < 2:
        return np.zeros(0), np.zeros(0)
    thumbs = np.asarray(thumbnails, np.float32)
    diff = np.abs(np.diff(thumbs, axis=0)).reshape(times.size - 1, -1).mean(axis=1)
    dt = np.maximum(np.diff(times), 1e-6)
    return 0.5 * (times[1:] + times[:-1]), diff / dt * float(np.median(dt))


@dataclass(frozen=True)
class OffsetEstimate:
    """A track's estimated time offset against its video.

    Attributes:
        offset_s: Seconds to add to the track's times (see `GpsTrack.shifted`).
        confidence: 0-1: correlation at the peak times how clearly it beats the next-best offset.
        correlation: Correlation of the two (log) signals at the peak.
        method: ``"embedded GPS"`` or ``"visual motion"``.
        applied: Whether the caller should apply it (confidence at least the threshold).
    """

    offset_s: float
    confidence: float
    correlation: float
    method: str
    applied: bool

    def describe(self) -> str:
        """One line for the summary."""
        verdict = "applied" if self.applied else "NOT applied (low confidence)"
        return (
            f"track offset {self.offset_s:+.2f} s by {self.method}, confidence {self.confidence:.2f} "
            f"(r={self.correlation:.2f}), {verdict}"
        )


def estimate_track_offset(
    track: GpsTrack,
    signal_t: np.ndarray,
    signal: np.ndarray,
    *,
    method: str,
    max_offset_s: float | None = None,
    dt: float = 0.25,
    config: GpsAlignConfig = GpsAlignConfig(),
) -> OffsetEstimate | None:
    """Estimate the offset to add to a track's times so its speed lines up with ``signal`` (video time).

    The track's speed and the signal (the video's embedded GPS speed, or `visual_motion`) are put on
    a common grid, log-transformed (the picture change grows with speed, but not linearly) and
    correlated at every offset (at least 80% of the shorter signal overlapping); the confidence
    weighs the peak correlation by how far it stands out from the best other local maximum. A steady
    pace without stops has no features to align, and honestly gives a low confidence.

    Args:
        track: The track file's GPS, timed from its first point (offset 0).
        signal_t: Times (s, video timeline) of the signal.
        signal: A quantity that grows with the rider's speed.
        method: Label of the signal.
        max_offset_s: Largest offset tried either way (None: the track's and video's spans).
        dt: Grid step (s).
        config: Parameters (confidence threshold).

    Returns:
        The estimate, or None when the signals are too short to compare.
    """
    t, speed = track_speed(track)
    signal_t = np.asarray(signal_t, np.float64)
    signal = np.asarray(signal, np.float64)
    ok = np.isfinite(signal)
    signal_t, signal = signal_t[ok], signal[ok]
    if t.size < 4 or signal_t.size < 4:
        return None
    video_grid = np.arange(signal_t[0], signal_t[-1], dt)
    track_grid = np.arange(t[0], t[-1], dt)
    if video_grid.size < 8 or track_grid.size < 8:
        return None
    v = np.interp(video_grid, signal_t, signal)
    g = np.interp(track_grid, t, speed)
    # offset o: track time tau shows video time tau + o; lag in grid steps between the two grids.
    lo = -(track_grid[-1] - video_grid[0])
    hi = video_grid[-1] - track_grid[0]
    if max_offset_s is not None:
        lo, hi = max(lo, -max_offset_s), min(hi, max_offset_s)
    # Short overlaps correlate by chance: at least 80% of the shorter signal must overlap.
    min_overlap = max(8, int(0.8 * min(v.size, g.size)))
    offsets = np.arange(lo, hi + dt / 2, dt)
    corr = np.full(offsets.size, -np.inf)
    for k, off in enumerate(offsets):
        # video sample i at time video_grid[i] matches track time video_grid[i] - off
        tau = video_grid - off
        inside = (tau >= track_grid[0]) & (tau <= track_grid[-1])
        if inside.sum() < min_overlap:
            continue
        # Logarithms: picture change and speed relate by a factor rather than an offset, and a stop
        # (the strongest feature) stands out instead of being one low value among many.
        a = np.log(np.maximum(v[inside], 0.0) + 1.0)
        b = np.log(np.maximum(np.interp(tau[inside], track_grid, g), 0.0) + 0.5)
        sa, sb = a.std(), b.std()
        if sa == 0 or sb == 0:
            continue
        corr[k] = float(((a - a.mean()) * (b - b.mean())).mean() / (sa * sb))
    if not np.isfinite(corr).any():
        return None
    best = int(np.argmax(corr))
    peak = float(corr[best])
    # The runner-up is the best other local maximum (beyond the peak's own lobe): smooth signals
    # correlate over seconds around the true offset, which is no ambiguity.
    finite = np.where(np.isfinite(corr), corr, -1.0)
    left, right = best, best
    while left > 0 and finite[left - 1] <= finite[left]:
        left -= 1
    while right < finite.size - 1 and finite[right + 1] <= finite[right]:
        right += 1
    others = np.concatenate([finite[:left], finite[right + 1 :]])
    second = float(others.max()) if others.size else 0.0
    # Sub-grid peak by a parabola through the neighbours.
    offset = float(offsets[best])
    if 0 < best < offsets.size - 1 and np.isfinite(corr[best - 1]) and np.isfinite(corr[best + 1]):
        denom = corr[best - 1] - 2 * peak + corr[best + 1]
        if denom < 0:
            offset += dt * 0.5 * (corr[best - 1] - corr[best + 1]) / denom
    distinct = (peak - max(second, 0.0)) / max(1.0 - max(second, 0.0), 1e-6)
    confidence = float(np.clip(peak, 0.0, 1.0) * np.clip(2.0 * distinct, 0.0, 1.0))
    return OffsetEstimate(
        offset_s=offset,
        confidence=confidence,
        correlation=peak,
        method=method,
        applied=confidence >= config.min_offset_confidence,
    )


@dataclass(frozen=True)
class MapCalibration:
    """How far the GPS map had to be moved in new-run time to agree with the keyframes' appearance.

    Attributes:
        shift_s: Seconds subtracted from the map's new-run times (0: the map agreed).
        score: Mean standardised appearance similarity along the shifted map.
        score_unshifted: The same along the map as it came.
        applied: Whether the shift was applied.
    """

    shift_s: float
    score: float
    score_unshifted: float
    applied: bool


def calibrate_mapping(
    mapping: GpsMapping,
    new_times: np.ndarray,
    ref_times: np.ndarray,
    similarity: np.ndarray,
    *,
    max_shift_s: float = 60.0,
    min_gain: float = 0.5,
    config: GpsAlignConfig = GpsAlignConfig(),
) -> tuple[GpsMapping, MapCalibration]:
    """Move the GPS map in time until it runs along the keyframes that look alike.

    The map rests on the tracks' timing: a wrong track offset (a GPX file's clock, a low-confidence
    estimate left out) shifts it by seconds, and a band around it would then hide the true pairs. The
    appearance similarity of every keyframe pair is known before any pair is examined, so the map is
    tried at shifts of up to ``max_shift_s`` and kept where the similarity along it is highest; vision,
    not the clock, decides when the map lies.

    Args:
        mapping: The coarse map.
        new_times: (n_new,) new keyframe times.
        ref_times: (n_ref,) reference keyframe times.
        similarity: (n_new, n_ref) appearance similarity.
        max_shift_s: Largest shift tried either way.
        min_gain: Least gain in mean standardised similarity for a shift to be applied.
        config: Parameters (band width: shifts within half its minimum are not worth applying).

    Returns:
        The (possibly shifted) map and what was found.
    """
    new_times = np.asarray(new_times, np.float64)
    ref_times = np.asarray(ref_times, np.float64)
    if similarity.size == 0 or new_times.size < 3 or ref_times.size < 3 or not mapping.valid.any():
        return mapping, MapCalibration(0.0, 0.0, 0.0, False)
    # Standardise each row: the true pair stands out of its row, whatever the row's overall level.
    median = np.median(similarity, axis=1, keepdims=True)
    spread = 1.4826 * np.median(np.abs(similarity - median), axis=1, keepdims=True)
    z = (similarity - median) / np.maximum(spread, 1e-6)
    z = np.maximum(z, np.concatenate([z[:, 1:], z[:, -1:]], axis=1))  # a neighbour keyframe counts too
    step = float(np.median(np.diff(new_times)))
    shifts = np.arange(-max_shift_s, max_shift_s + step / 2, step)
    scores = np.full(shifts.size, -np.inf)
    min_rows = max(3, int(0.3 * new_times.size))
    for k, shift in enumerate(shifts):
        t_ref, _, has = mapping.at(new_times + shift)
        if has.sum() < min_rows:
            continue
        j = np.clip(np.searchsorted(ref_times, t_ref[has]), 0, ref_times.size - 1)
        scores[k] = float(z[np.nonzero(has)[0], j].mean())
    zero = int(np.argmin(np.abs(shifts)))
    if not np.isfinite(scores).any():
        return mapping, MapCalibration(0.0, 0.0, 0.0, False)
    best = int(np.argmax(scores))
    base = float(scores[zero]) if np.isfinite(scores[zero]) else -np.inf
    shift = float(shifts[best])
    applied = abs(shift) > 0.5 * config.band_min_s and scores[best] >= base + min_gain
    calibration = MapCalibration(shift if applied else 0.0, float(scores[best]), base, bool(applied))
    if not applied:
        return mapping, calibration
    from dataclasses import replace

    return replace(mapping, t_new=mapping.t_new - shift), calibration

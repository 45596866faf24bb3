"""Dense warp: every new keyframe placed among the reference's frames at full frame rate.

The path pairs new keyframes with reference *keyframes*, a third of a second apart; the zoom
between the views places each new keyframe between them, but not to a frame (its error is what the
side-by-side player, the ahead/behind curve and markers added later inherit). Here each new
keyframe is compared with every reference frame in a short window around the warp's estimate, and
located where the inliers peak and the zoom between the views crosses the cameras' own level
(`mtbsync.align.refine.locate_in_window`, the method that times markers, with the roles of the runs
swapped). Refitting the warp through these points makes it accurate to about a frame wherever the
new run was verified.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from mtbsync.align.fit import pin_warp
from mtbsync.align.refine import CameraZoom, locate_windows
from mtbsync.align.warp import Warp
from mtbsync.config import DENSE_AUTO_PIXELS, MatchConfig, SyncConfig
from mtbsync.errors import ConfigError
from mtbsync.features.extractors import make_extractor
from mtbsync.features.index import FeatureIndex
from mtbsync.features.keyframes import stack_features, window_features
from mtbsync.io.video import VideoSource, merge_windows, probe
from mtbsync.match.verify import verify_block_pairs

# Half-width (s of reference time) of the window searched around the warp's estimate: the warp is
# rarely off by more than a third of a keyframe step, and the window's ends must show the inliers
# fall off on both sides of the peak.
DENSE_MIN_HALF_WINDOW_S = 0.25
DENSE_MAX_HALF_WINDOW_S = 0.6
# Keyframe knots between two located keyframes at most this far apart (s of new time) give way to
# the curve through them: about two missing keyframes at the usual three per second.
DENSE_MAX_GAP_S = 1.1


@dataclass(frozen=True)
class DensePoints:
    """New keyframes located among full-rate reference frames.

    Attributes:
        t_new: (k,) new keyframe times.
        t_ref: (k,) located reference times (NaN where the keyframe was not found).
        peak_inliers: (k,) inliers at the peak.
        cameras: The zoom between the cameras (`locate_windows`); None when nothing was searched.
    """

    t_new: np.ndarray
    t_ref: np.ndarray
    peak_inliers: np.ndarray
    cameras: CameraZoom | None = None

    @property
    def zoom_bias(self) -> float:
        """The zoom between the lenses (0 when nothing was searched)."""
        return self.cameras.lens if self.cameras is not None else 0.0

    @property
    def found(self) -> np.ndarray:
        """Which keyframes were located."""
        return np.isfinite(self.t_ref)


def half_windows(residual_p90_s: float, ref_frame_s: float) -> float:
    """The window half-width for a warp whose residuals reach ``residual_p90_s``."""
    wanted = max(2.0 * residual_p90_s + 2.0 * ref_frame_s, DENSE_MIN_HALF_WINDOW_S)
    return float(min(wanted, DENSE_MAX_HALF_WINDOW_S))


def locate_keyframes(
    new_times: np.ndarray,
    new_features: tuple[np.ndarray, np.ndarray, np.ndarray],
    ref_times: np.ndarray,
    ref_features: tuple[np.ndarray, np.ndarray, np.ndarray],
    predicted: np.ndarray,
    half_window: float,
    config: MatchConfig,
    *,
    reproj_px: float,
    min_inliers: int,
    cameras: CameraZoom | None = None,
) -> DensePoints:
    """Locate each new keyframe among the reference frames within ``half_window`` of its estimate.

    Args:
        new_times: (k,) new keyframe times.
        new_features: Their stacked (keypoints, descriptors, offsets).
        ref_times: (m,) reference frame times (full frame rate, increasing).
        ref_features: Their stacked (keypoints, descriptors, offsets).
        predicted: (k,) the warp's reference time for each new keyframe (NaN: skipped).
        half_window: Seconds of reference time searched on each side.
        config: Matching parameters.
        reproj_px: Geometric threshold for the feature images' size.
        min_inliers: Fewest inliers at a peak.
        cameras: The zoom between the cameras when already measured (`locate_windows`).

    Returns:
        The located points (NaN where not found).
    """
    new_times = np.asarray(new_times, np.float64)
    predicted = np.asarray(predicted, np.float64)
    ref_times = np.asarray(ref_times, np.float64)
    located = np.full(new_times.size, np.nan)
    peaks = np.zeros(new_times.size, np.int32)
    plan: list[tuple[int, np.ndarray]] = []
    for k, guess in enumerate(predicted):
        if not math.isfinite(guess):
            continue
        window = np.nonzero(np.abs(ref_times - guess) <= half_window)[0]
        if window.size >= 3:
            plan.append((k, window))
    if not plan:
        return DensePoints(new_times, located, peaks, None)
    pairs = np.array([(k, int(r)) for k, window in plan for r in window], np.int64)
    geometry = verify_block_pairs(*new_features, *ref_features, pairs, config, reproj_px=reproj_px)
    # The searched frames are the reference's: their zoom relative to the keyframe grows as they pass.
    found = locate_windows(
        [ref_times[w] for _, w in plan],
        geometry,
        min_inliers=min_inliers,
        with_epipoles=lambda: verify_block_pairs(
            *new_features, *ref_features, pairs, config, reproj_px=reproj_px, epipoles=True
        ),
        zoom_sign=-1.0,
        cameras=cameras,
    )
    for (k, _), timing in zip(plan, found.timings, strict=True):
        peaks[k] = timing.peak_inliers
        if math.isfinite(timing.t_new) and abs(timing.t_new - predicted[k]) <= half_window:
            located[k] = timing.t_new
    return DensePoints(new_times, located, peaks, found.cameras)


@dataclass(frozen=True)
class DensePlan:
    """What the dense warp would decode, or why it does not run.

    Attributes:
        keyframes: Indices of the new keyframes inside the warp's covered range.
        predicted: (k,) the warp's reference time of each.
        half_window: Seconds of reference time searched on each side.
        windows: The reference windows to decode (merged).
        skipped: ``warp.metrics["dense"]`` when it does not run (``{"ran": False, "why": ...}``),
            else None.
    """

    keyframes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    predicted: np.ndarray = field(default_factory=lambda: np.zeros(0))
    half_window: float = 0.0
    windows: list[tuple[float, float]] = field(default_factory=list)
    skipped: dict[str, Any] | None = None


def plan_dense_warp(
    warp: Warp, new: FeatureIndex | None, reference: VideoSource, config: SyncConfig
) -> DensePlan:
    """Decide whether the dense warp runs and which reference windows it decodes.

    It runs when ``config.dense`` is ``on``, or ``auto`` and the reference frames to decode stay
    under `DENSE_AUTO_PIXELS`.

    Args:
        warp: The alignment's warp.
        new: The new run's keyframe index the alignment was made from (None: it does not run).
        reference: The reference run's video.
        config: Parameters.

    Returns:
        The plan; ``skipped`` says why not when it does not run.

    Raises:
        ConfigError: ``config.dense`` is not auto, on or off.
    """
    if config.dense not in ("auto", "on", "off"):
        raise ConfigError(f"dense must be auto, on or off, not {config.dense!r}")
    if config.dense == "off" or new is None or warp.is_empty:
        return DensePlan(skipped={"ran": False, "why": "off"})
    lo, hi = warp.new_range
    keyframes = np.nonzero((new.times >= lo) & (new.times <= hi))[0]
    predicted = warp.to_ref(new.times[keyframes])
    ref_info = probe(reference)
    half = half_windows(
        float((warp.metrics.get("residuals_s") or {}).get("p90") or 0.1), ref_info.frame_duration
    )
    windows = merge_windows([(p - half, p + half) for p in predicted if np.isfinite(p)], gap=0.0)
    seconds = sum(b - a for a, b in windows)
    pixels = seconds / ref_info.frame_duration * ref_info.width * ref_info.height
    if config.dense == "auto" and pixels > DENSE_AUTO_PIXELS:
        return DensePlan(
            skipped={
                "ran": False,
                "why": f"the reference is long ({seconds:.0f} s at {ref_info.width}x{ref_info.height}); "
                "--dense-warp on times every frame",
            }
        )
    return DensePlan(keyframes, predicted, half, windows)


def dense_warp(
    warp: Warp, new: FeatureIndex, reference: VideoSource, plan: DensePlan, config: SyncConfig
) -> tuple[Warp, dict[str, Any]]:
    """Place every planned new keyframe among the reference's frames at full rate; pin the warp there.

    Args:
        warp: The alignment's warp.
        new: The new run's keyframe index.
        reference: The reference run's video.
        plan: `plan_dense_warp`'s plan (one that runs).
        config: Parameters.

    Returns:
        The warp pinned at the located keyframes that agree with their neighbours (unchanged when
        fewer than two), with ``metrics["dense"]`` set, and those metrics (keyframes, located,
        reference frames decoded, zoom bias).
    """
    keyframes = plan.keyframes
    kind = str(warp.meta.get("features") or "orb")
    long_side = min(config.features.feature_side, config.decode.max_side)
    extractor = make_extractor(kind, config.features)
    learned = kind != "orb"
    reference_frames = 0

    def locate(
        chosen: np.ndarray,
        predicted: np.ndarray,
        windows: list[tuple[float, float]],
        cameras: CameraZoom | None = None,
    ) -> DensePoints:
        nonlocal reference_frames
        ref_t, ref_feats = window_features(reference, windows, long_side, extractor)
        reference_frames += len(ref_t)
        return locate_keyframes(
            new.times[keyframes[chosen]],
            stack_features([new.frame(int(k)) for k in keyframes[chosen]], kind),
            ref_t,
            stack_features(ref_feats, kind),
            predicted,
            plan.half_window,
            config.match,
            reproj_px=config.match.ransac_reproj_px * max(new.image_size) / 640.0,
            min_inliers=config.match.learned_min_inliers if learned else config.match.min_inliers,
            cameras=cameras,
        )

    points = locate(np.arange(keyframes.size), plan.predicted, plan.windows)
    found = points.found & consistent_points(points.t_new, points.t_ref)
    # Where the keyframe warp was further off than the window reaches, the keyframe is not found
    # around its estimate: placed again from its located neighbours (each accurate to a fraction of
    # a frame), it is searched once more there.
    retry, again = retry_predictions(points.t_new, points.t_ref, found, plan.predicted, plan.half_window)
    relocated = 0
    if retry.size:
        windows = merge_windows([(p - plan.half_window, p + plan.half_window) for p in again], gap=0.0)
        second = locate(retry, again, windows, cameras=points.cameras)
        t_ref = points.t_ref.copy()
        t_ref[retry] = np.where(second.found, second.t_ref, t_ref[retry])
        peaks = points.peak_inliers.copy()
        peaks[retry] = np.where(second.found, second.peak_inliers, peaks[retry])
        points = replace(points, t_ref=t_ref, peak_inliers=peaks)
        before = found
        found = points.found & consistent_points(points.t_new, points.t_ref)
        relocated = int((found & ~before)[retry].sum())
    dense_metrics = {
        "ran": True,
        "keyframes": len(keyframes),
        "located": int(found.sum()),
        "searched_again": int(retry.size),
        "located_again": relocated,
        "reference_frames": reference_frames,
        "zoom_bias": round(points.zoom_bias, 4),
    }
    if found.sum() >= 2:
        warp = _follow_located(warp, points.t_new[found], points.t_ref[found])
        warp = drop_knots_between(warp, points.t_new[found])
        warp = pin_warp(warp, points.t_new[found], points.t_ref[found], clearance=0.1)
        warp.metrics.pop("anchors", None)  # anchors count the markers pinned later
    warp.metrics["dense"] = dense_metrics
    return warp, dense_metrics


def retry_predictions(
    t_new: np.ndarray,
    t_ref: np.ndarray,
    found: np.ndarray,
    predicted: np.ndarray,
    half_window: float,
    *,
    max_reach_s: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Keyframes to search again, and where: their reference times from the located neighbours.

    A keyframe not located (or located inconsistently) is placed on the line between the located
    keyframes on either side, or beyond the first or last along the line through the nearest two
    (at most ``max_reach_s`` of new time away). It is searched again only where that estimate moved
    more than a quarter of the window from the first one: otherwise the same search would be repeated.

    Args:
        t_new: (k,) new keyframe times, increasing.
        t_ref: (k,) located reference times (NaN where not found).
        found: (k,) which located points are kept.
        predicted: (k,) the first estimates (NaN: not searched).
        half_window: Seconds of reference time searched on each side.
        max_reach_s: How far beyond the located keyframes an estimate is extrapolated; 0 (not at
            all) by default: past the ends the rider may be accelerating away from a start gate,
            and a search there along the extrapolated line found places the new run never reaches.

    Returns:
        (indices, estimates): the keyframes to search again and their new estimates.
    """
    good = np.nonzero(found)[0]
    if good.size < 2:
        return np.zeros(0, np.int64), np.zeros(0)
    x, y = t_new[good], t_ref[good]
    todo = np.nonzero(~found & np.isfinite(predicted))[0]
    estimate = np.interp(t_new[todo], x, y)
    before, after = t_new[todo] < x[0], t_new[todo] > x[-1]
    slope_first = (y[1] - y[0]) / (x[1] - x[0])
    slope_last = (y[-1] - y[-2]) / (x[-1] - x[-2])
    estimate[before] = y[0] + slope_first * (t_new[todo][before] - x[0])
    estimate[after] = y[-1] + slope_last * (t_new[todo][after] - x[-1])
    reach = np.where(before, x[0] - t_new[todo], np.where(after, t_new[todo] - x[-1], 0.0))
    moved = np.abs(estimate - predicted[todo]) > 0.25 * half_window
    keep = moved & (reach <= max_reach_s)
    return todo[keep], estimate[keep]


def drop_knots_between(warp: Warp, located: np.ndarray, *, max_gap_s: float = DENSE_MAX_GAP_S) -> Warp:
    """The warp without its keyframe knots that lie between two located keyframes close together.

    A keyframe the dense pass could not locate keeps the keyframe path's time, which may be off by a
    keyframe step where the path was unsure; between located neighbours at most ``max_gap_s`` apart,
    the curve through those neighbours is the better estimate. Knots in longer gaps (where nothing
    was located, e.g. a stretch vision could not verify) are kept.
    """
    located = np.unique(np.asarray(located, np.float64))
    if located.size < 2 or warp.is_empty:
        return warp
    after = np.searchsorted(located, warp.t_new, side="right")
    inside = (after > 0) & (after < located.size)
    lo = located[np.clip(after - 1, 0, located.size - 1)]
    hi = located[np.clip(after, 0, located.size - 1)]
    strictly = inside & (warp.t_new > lo + 1e-9) & (warp.t_new < hi - 1e-9) & (hi - lo <= max_gap_s)
    if not strictly.any():
        return warp
    keep = ~strictly
    return replace(warp, t_new=warp.t_new[keep], t_ref=warp.t_ref[keep], confidence=warp.confidence[keep])


def _follow_located(warp: Warp, t_new: np.ndarray, t_ref: np.ndarray) -> Warp:
    """Move the warp's knots between located keyframes by the located keyframes' own correction.

    The keyframe warp's error is mostly systematic where the cameras differ (the zoom that placed its
    keyframes has another level under another lens): the correction measured at the located
    keyframes (smoothed over three neighbours) is carried to the knots between them, so a keyframe
    that could not be located follows its neighbours instead of keeping the old bias.
    """
    offsets = t_ref - warp.to_ref(t_new)
    good = np.isfinite(offsets)
    if good.sum() < 2:
        return warp
    t_new, offsets = t_new[good], offsets[good]
    if offsets.size >= 3:
        padded = np.concatenate([offsets[:1], offsets, offsets[-1:]])
        offsets = np.median(np.stack([padded[:-2], padded[1:-1], padded[2:]]), axis=0)
    shifted = warp.t_ref + np.interp(warp.t_new, t_new, offsets)
    shifted = np.maximum.accumulate(shifted)
    return replace(warp, t_ref=shifted)


def consistent_points(t_new: np.ndarray, t_ref: np.ndarray, tolerance_s: float = 0.12) -> np.ndarray:
    """Located points that agree with a line through their neighbours on one side (a wrong peak
    agrees with neither side; a change of pace still agrees with one).

    Args:
        t_new: (k,) new keyframe times.
        t_ref: (k,) located reference times (NaN where not found).
        tolerance_s: How far from the neighbours' line a point may lie (s of reference time).

    Returns:
        (k,) which points to keep.
    """
    ok = np.isfinite(t_ref)
    idx = np.nonzero(ok)[0]
    keep = np.zeros(t_ref.size, bool)
    for pos, k in enumerate(idx):
        for side in (idx[max(0, pos - 2) : pos], idx[pos + 1 : pos + 3]):
            if side.size == 2:
                slope = (t_ref[side[1]] - t_ref[side[0]]) / (t_new[side[1]] - t_new[side[0]])
                guess = t_ref[side[0]] + slope * (t_new[k] - t_new[side[0]])
                if abs(guess - t_ref[k]) <= tolerance_s:
                    keep[k] = True
    return keep

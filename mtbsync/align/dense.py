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
from dataclasses import dataclass

import numpy as np

from mtbsync.align.refine import locate_in_window, zoom_at_peaks
from mtbsync.config import MatchConfig
from mtbsync.match.verify import verify_block_pairs

# Half-width (s of reference time) of the window searched around the warp's estimate: the warp is
# rarely off by more than a third of a keyframe step, and the window's ends must show the inliers
# fall off on both sides of the peak.
DENSE_MIN_HALF_WINDOW_S = 0.25
DENSE_MAX_HALF_WINDOW_S = 0.6


@dataclass(frozen=True)
class DensePoints:
    """New keyframes located among full-rate reference frames.

    Attributes:
        t_new: (k,) new keyframe times.
        t_ref: (k,) located reference times (NaN where the keyframe was not found).
        peak_inliers: (k,) inliers at the peak.
        zoom_bias: Constant log zoom between the cameras measured at the peaks.
    """

    t_new: np.ndarray
    t_ref: np.ndarray
    peak_inliers: np.ndarray
    zoom_bias: float

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
        return DensePoints(new_times, located, peaks, 0.0)
    pairs = np.array([(k, int(r)) for k, window in plan for r in window], np.int64)
    geometry = verify_block_pairs(*new_features, *ref_features, pairs, config, reproj_px=reproj_px)
    spans = np.cumsum([0] + [len(w) for _, w in plan])
    # Zoom of the reference frame relative to the new keyframe grows as the reference passes the
    # place; `locate_in_window` expects it falling, as when new frames pass a reference frame.
    zooms = -geometry.log_zoom
    bias = zoom_at_peaks(
        [
            (ref_times[w], geometry.inliers[a:b], zooms[a:b])
            for (_, w), a, b in zip(plan, spans[:-1], spans[1:], strict=True)
        ],
        min_inliers=min_inliers,
    )
    for (k, window), a, b in zip(plan, spans[:-1], spans[1:], strict=True):
        timing = locate_in_window(
            ref_times[window], geometry.inliers[a:b], zooms[a:b], zoom_bias=bias, min_inliers=min_inliers
        )
        peaks[k] = timing.peak_inliers
        if math.isfinite(timing.t_new) and abs(timing.t_new - predicted[k]) <= half_window:
            located[k] = timing.t_new
    return DensePoints(new_times, located, peaks, float(bias))

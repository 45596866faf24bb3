"""Fitting the monotone warp to verified pairs, per-moment confidence, and the quality gates."""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

import numpy as np
from scipy.optimize import isotonic_regression

from mtbsync.align.warp import Warp
from mtbsync.config import WarpGates

# A pair further than this (seconds of reference time) from the robust trend is an outlier; the floor
# grows with the spacing of the pairs (a change of pace bends the trend by up to pace x spacing).
_OUTLIER_FLOOR_S = 0.25
# Typical timing noise of one refined pair (seconds of reference time).
_NOISE_S = 0.08
# Verified pairs further apart than this leave a gap whose middle gets low confidence.
_GAP_S = 2.0
_REVIEW_LEVEL = 0.6


def _isotonic(t_ref: np.ndarray, weights: np.ndarray) -> np.ndarray:
    return isotonic_regression(t_ref, weights=weights, increasing=True).x


def _smooth(x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Blend each point with the line through its two neighbours (weighted by support).

    Straight stretches are kept exactly whatever the spacing of the points, while the timing noise
    of single pairs is halved.
    """
    if y.size < 3:
        return y.copy()
    out = y.copy()
    span = x[2:] - x[:-2]
    between = y[:-2] + (y[2:] - y[:-2]) * (x[1:-1] - x[:-2]) / np.maximum(span, 1e-9)
    # Corners (braking into a stop) are real: where the neighbours' line misses the point by much more
    # than pair timing noise, the point is kept as it is.
    neighbour_w = 0.5 * (weights[:-2] + weights[2:]) * np.exp(-(((between - y[1:-1]) / _NOISE_S) ** 2))
    out[1:-1] = (weights[1:-1] * y[1:-1] + neighbour_w * between) / (weights[1:-1] + neighbour_w)
    return out


def pair_confidence(inliers: np.ndarray, residual: np.ndarray) -> np.ndarray:
    """Confidence of each pair from its geometric support and its agreement with the warp."""
    support = 1.0 - np.exp(-np.asarray(inliers, np.float64) / 40.0)
    agreement = np.exp(-((np.asarray(residual, np.float64) / 0.2) ** 2))
    return np.clip(support * agreement, 0.0, 1.0)


def fit_warp(
    t_new: np.ndarray,
    t_ref: np.ndarray,
    inliers: np.ndarray,
    verified: np.ndarray,
    *,
    gates: WarpGates,
    new_duration: float,
    ref_duration: float,
    path_points: int,
    extend_s: float = 0.0,
) -> Warp:
    """Fit the monotone warp through verified pairs and judge it against the gates.

    Args:
        t_new: (n,) new-run times of the pairs (increasing).
        t_ref: (n,) reference times of the pairs.
        inliers: (n,) geometric inliers of each pair.
        verified: (n,) whether each pair passed geometric verification.
        gates: Quality thresholds.
        new_duration: Length of the new run (s).
        ref_duration: Length of the reference run (s).
        path_points: Points on the coarse path (for the verified fraction).
        extend_s: Extend the covered part by up to this much at each end (half the keyframe spacing:
            the true ends of the overlap lie between the last matched keyframe and the next one), with
            the end's own slope and half its confidence, within both runs' lengths.

    Returns:
        The warp; ``ok`` false with a reason when a gate fails (the knots are kept for inspection).
    """
    gate_dict = asdict(gates)
    t_new = np.asarray(t_new, np.float64)
    t_ref = np.asarray(t_ref, np.float64)
    inliers = np.asarray(inliers, np.float64)
    verified = np.asarray(verified, bool)
    x, y, w = t_new[verified], t_ref[verified], np.maximum(inliers[verified], 1.0)
    metrics: dict[str, Any] = {
        "path_points": int(path_points),
        "verified_points": int(verified.sum()),
        "inlier_frac": float(verified.sum() / path_points) if path_points else 0.0,
    }
    if x.size < 2:
        return _not_ok("too few verified matches between the runs", metrics, gate_dict)

    # Robust local trend, outliers out, then smooth and impose monotonicity.
    deviation = _one_sided_line_deviation(x, y, half_width=3)
    mad = 1.4826 * np.median(deviation)
    spacing = float(np.median(np.diff(x))) if x.size > 1 else 0.0
    pace = float(np.median(np.abs(np.diff(y)) / np.maximum(np.diff(x), 1e-9))) if x.size > 1 else 1.0
    keep = deviation <= max(_OUTLIER_FLOOR_S, 4.0 * mad, 1.5 * spacing * pace)
    metrics["outliers"] = int((~keep).sum())
    x, y, w = x[keep], y[keep], w[keep]
    if x.size < 2:
        return _not_ok("too few consistent matches between the runs", metrics, gate_dict)
    fitted = _isotonic(_smooth(x, _isotonic(y, w), w), w)
    knots_new, knots_ref, knot_w = _unique_knots(x, fitted, w)
    if knots_new.size < 2:
        return _not_ok("the matches cover no time span", metrics, gate_dict)

    residual_all = np.abs(t_ref[verified] - np.interp(t_new[verified], knots_new, knots_ref))
    residual_kept = np.abs(y - np.interp(x, knots_new, knots_ref))
    metrics["residuals_s"] = _stats(residual_kept)
    metrics["residuals_all_s"] = _stats(residual_all)

    confidence = pair_confidence(knot_w, np.interp(knots_new, x, np.abs(y - fitted)))
    knots_new, knots_ref, confidence = _mark_gaps(knots_new, knots_ref, confidence)
    metrics["verified_ref_range"] = [round(float(knots_ref[0]), 4), round(float(knots_ref[-1]), 4)]
    if extend_s > 0 and knots_new.size >= 2:
        knots_new, knots_ref, confidence = _extend_ends(
            knots_new, knots_ref, confidence, extend_s, new_duration, ref_duration
        )

    cov_new = (knots_new[-1] - knots_new[0]) / new_duration if new_duration > 0 else 0.0
    cov_ref = (knots_ref[-1] - knots_ref[0]) / ref_duration if ref_duration > 0 else 0.0
    metrics["coverage_new"] = round(float(cov_new), 4)
    metrics["coverage_ref"] = round(float(cov_ref), 4)
    metrics["mean_confidence"] = round(float(confidence.mean()), 4)
    metrics["segments"] = confidence_segments(knots_new, knots_ref, confidence)

    failures = []
    if metrics["verified_points"] < gates.min_points:
        failures.append(f"only {metrics['verified_points']} verified points (need {gates.min_points})")
    if metrics["inlier_frac"] < gates.min_inlier_frac:
        failures.append(
            f"only {metrics['inlier_frac']:.0%} of the path is geometrically verified "
            f"(need {gates.min_inlier_frac:.0%})"
        )
    if metrics["residuals_s"]["p90"] > gates.max_p90:
        failures.append(f"residual p90 {metrics['residuals_s']['p90']:.2f} s exceeds {gates.max_p90:.2f} s")
    if max(cov_new, cov_ref) < gates.min_coverage:
        failures.append(
            f"only {max(cov_new, cov_ref):.0%} of the runs overlap (need {gates.min_coverage:.0%})"
        )
    ok = not failures
    reason = "; ".join(failures) if failures else ""
    return Warp(knots_new, knots_ref, confidence, ok=ok, reason=reason, metrics=metrics, gates=gate_dict)


def _one_sided_line_deviation(x: np.ndarray, y: np.ndarray, half_width: int) -> np.ndarray:
    """How far each point lies from robust lines through its left and through its right neighbours.

    The smaller of the two deviations is kept: at a real change of pace (braking into a stop) one
    side still predicts the point, while a wrong match is predicted by neither. Medians keep a wrong
    match from dragging its neighbours, as it would a least-squares or isotonic trend.
    """
    n = x.size
    deviation = np.zeros(n)
    for k in range(n):
        best = np.inf
        for idx in (np.arange(max(0, k - half_width), k), np.arange(k + 1, min(n, k + half_width + 1))):
            if idx.size == 0:
                continue
            if idx.size >= 2:
                dx = np.diff(x[idx])
                slopes = np.diff(y[idx])[dx > 0] / dx[dx > 0]
                slope = float(np.median(slopes)) if slopes.size else 0.0
            else:
                slope = 0.0
            prediction = np.median(y[idx] + slope * (x[k] - x[idx]))
            best = min(best, abs(y[k] - prediction))
        deviation[k] = 0.0 if np.isinf(best) else best
    return deviation


def _not_ok(reason: str, metrics: dict[str, Any], gates: dict[str, Any]) -> Warp:
    return Warp(np.zeros(0), np.zeros(0), np.zeros(0), ok=False, reason=reason, metrics=metrics, gates=gates)


def _unique_knots(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge pairs at the same new time (weighted mean), so knots are strictly increasing."""
    ux, inverse = np.unique(x, return_inverse=True)
    wsum = np.bincount(inverse, weights=w)
    uy = np.bincount(inverse, weights=y * w) / wsum
    return ux, np.maximum.accumulate(uy), wsum


def _mark_gaps(
    t_new: np.ndarray, t_ref: np.ndarray, confidence: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Insert a zero-confidence knot in the middle of every long stretch without verified pairs."""
    gaps = np.nonzero(np.diff(t_new) > _GAP_S)[0]
    if gaps.size == 0:
        return t_new, t_ref, confidence
    mid_new = 0.5 * (t_new[gaps] + t_new[gaps + 1])
    mid_ref = 0.5 * (t_ref[gaps] + t_ref[gaps + 1])
    order = np.argsort(np.concatenate([t_new, mid_new]), kind="stable")
    return (
        np.concatenate([t_new, mid_new])[order],
        np.concatenate([t_ref, mid_ref])[order],
        np.concatenate([confidence, np.zeros(gaps.size)])[order],
    )


def _extend_ends(
    t_new: np.ndarray, t_ref: np.ndarray, conf: np.ndarray, extend_s: float, new_len: float, ref_len: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    slope_start = (t_ref[1] - t_ref[0]) / (t_new[1] - t_new[0])
    slope_end = (t_ref[-1] - t_ref[-2]) / (t_new[-1] - t_new[-2])
    head = min(extend_s, t_new[0], t_ref[0] / slope_start if slope_start > 0 else 0.0)
    tail = min(extend_s, max(0.0, new_len - t_new[-1]))
    # A flat end (the rider stopped) is not extended: where it ends is unknown.
    tail = min(tail, max(0.0, ref_len - t_ref[-1]) / slope_end) if slope_end > 0 else 0.0
    if head > 1e-3:
        t_new = np.concatenate([[t_new[0] - head], t_new])
        t_ref = np.concatenate([[t_ref[0] - head * slope_start], t_ref])
        conf = np.concatenate([[0.5 * conf[0]], conf])
    if tail > 1e-3:
        t_new = np.concatenate([t_new, [t_new[-1] + tail]])
        t_ref = np.concatenate([t_ref, [t_ref[-1] + tail * slope_end]])
        conf = np.concatenate([conf, [0.5 * conf[-1]]])
    return t_new, t_ref, conf


def confidence_segments(t_new: np.ndarray, t_ref: np.ndarray, confidence: np.ndarray) -> list[dict[str, Any]]:
    """Split the covered part into stretches of high and low confidence."""
    segments: list[dict[str, Any]] = []
    if t_new.size == 0:
        return segments
    high = confidence >= _REVIEW_LEVEL
    start = 0
    for k in range(1, t_new.size + 1):
        if k == t_new.size or high[k] != high[start]:
            end = k - 1
            segments.append(
                {
                    "t_new": [round(float(t_new[start]), 3), round(float(t_new[end]), 3)],
                    "t_ref": [round(float(t_ref[start]), 3), round(float(t_ref[end]), 3)],
                    "confidence": round(float(confidence[start : end + 1].mean()), 3),
                    "level": "high" if high[start] else "low",
                }
            )
            start = k
    return segments


def _stats(values: np.ndarray) -> dict[str, float]:
    if values.size == 0:
        return {"mae": math.nan, "p50": math.nan, "p90": math.nan, "p95": math.nan, "max": math.nan}
    return {
        "mae": round(float(values.mean()), 4),
        "p50": round(float(np.percentile(values, 50)), 4),
        "p90": round(float(np.percentile(values, 90)), 4),
        "p95": round(float(np.percentile(values, 95)), 4),
        "max": round(float(values.max()), 4),
    }


def pin_warp(warp: Warp, t_new: np.ndarray, t_ref: np.ndarray, *, clearance: float = 0.2) -> Warp:
    """The warp passing exactly through anchor pairs (refined markers, or pairs a user pinned).

    Knots closer than ``clearance`` seconds (new time) to an anchor give way to it; monotonicity is
    restored by isotonic regression in which the anchors weigh far more than the other knots.
    """
    t_new = np.atleast_1d(np.asarray(t_new, np.float64))
    t_ref = np.atleast_1d(np.asarray(t_ref, np.float64))
    if warp.is_empty or t_new.size == 0:
        return warp
    keep = np.ones(warp.t_new.size, bool)
    for anchor in t_new:
        keep &= np.abs(warp.t_new - anchor) > clearance
    conf_at_anchor = warp.confidence_at(t_new)
    x = np.concatenate([warp.t_new[keep], t_new])
    y = np.concatenate([warp.t_ref[keep], t_ref])
    c = np.concatenate([warp.confidence[keep], conf_at_anchor])
    w = np.concatenate([np.ones(keep.sum()), np.full(t_new.size, 1e3)])
    order = np.argsort(x, kind="stable")
    x, y, c, w = x[order], y[order], c[order], w[order]
    # Anchors are hard constraints. Made monotone among themselves, they overrule every other knot
    # that contradicts them (a knot before an anchor but above it, or after it but below it): such
    # knots are dropped, not averaged in, since pooling would either pull the anchor off its value or
    # flatten the warp ahead of it, and both move the first arrival at the anchor's reference time.
    is_anchor = w > 1.0
    y[is_anchor] = _isotonic(y[is_anchor], np.ones(int(is_anchor.sum())))
    anchor_x, anchor_y = x[is_anchor], y[is_anchor]
    before = np.searchsorted(anchor_x, x, side="right") - 1
    after = np.searchsorted(anchor_x, x, side="left")
    lower = np.where(before >= 0, anchor_y[np.clip(before, 0, None)], -np.inf)
    upper = np.where(after < anchor_x.size, anchor_y[np.clip(after, None, anchor_x.size - 1)], np.inf)
    consistent = is_anchor | ((y >= lower) & (y <= upper))
    x, y, c, w = x[consistent], y[consistent], c[consistent], w[consistent]
    y = _isotonic(y, w)
    x, first = np.unique(x, return_index=True)
    y, c = y[first], c[first]
    pinned = Warp(
        x,
        y,
        c,
        ok=warp.ok,
        reason=warp.reason,
        metrics=dict(warp.metrics),
        gates=warp.gates,
        meta=dict(warp.meta),
    )
    pinned.metrics["anchors"] = int(t_new.size)
    return pinned

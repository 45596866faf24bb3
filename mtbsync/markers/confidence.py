"""A marker's confidence: the probability that it lies within one frame of where it belongs.

A marker timed at full frame rate is as good as the agreement of the reference frames around it
that were found in the new run. Their scatter about a common line, how many were found, how far the
full-rate time moved from the keyframe warp's, how slowly the new rider passed (a slow pass spreads
one reference frame over many new frames), a stop at the place, and learned features (used where
the cameras differ) each move the probability. The model is a logistic regression on these
figures, fitted on the development pairs by ``benchmarks/calibrate_confidence.py``, which prints
the coefficients below and the reliability table in ``benchmarks/RESULTS.md`` (confidence bins
against the share of markers observed within one frame). Held-out pairs are scored, never fitted.
"""

from __future__ import annotations

import math
from typing import Any

# Fitted by `benchmarks/calibrate_confidence.py --collect --fit` on the development split (1131
# markers from 37 pairs: the dev conditions matrix and the rendered, GoPro and generated pairs).
COEFFICIENTS: dict[str, float] = {
    "intercept": 2.519,
    "log_spread_frames": -0.971,
    "few_frames": -0.152,
    "log_shift_frames": -0.293,
    "stop": -1.123,
    "log_speed": 0.509,
    "learned": -0.446,
    "log_peak_inliers": -0.155,
}

# Whatever the model says, these send a marker to review: on the development pairs every marker
# more than two frames off had one of them (slow passes near stops above all), at the cost of
# reviewing about one marker in nine that was fine. Confidence is capped under the review level.
GUARD_SLOW_PACE = 0.35  # the new rider covers less than this share of the reference's pace
GUARD_SHIFT_FRAMES = 4.0  # the full-rate time moved this far from the keyframe warp
GUARD_SPREAD_FRAMES = 1.0  # the located reference frames disagree by this much
GUARD_FINE_SPREAD_FRAMES = 0.5  # ... when the new run has 1.5x the reference's frame rate or more
GUARD_CAP = 0.5


def marker_features(timing: Any, *, new_frame_s: float, speed: float, learned: bool) -> dict[str, float]:
    """The figures the confidence model reads, from a `mtbsync.align.refine.MomentTiming`.

    Args:
        timing: How the marker was timed at full frame rate.
        new_frame_s: One frame of the new run (s).
        speed: The warp's pace there (reference seconds per new second).
        learned: Whether learned features timed it.
    """
    spread = timing.spread_s / new_frame_s if math.isfinite(timing.spread_s) else 1.0
    shift = timing.shift_s / new_frame_s if math.isfinite(timing.shift_s) else 3.0
    return {
        "log_spread_frames": math.log(spread + 0.1),
        "few_frames": 1.0 if timing.located < 3 else 0.0,
        "log_shift_frames": math.log(shift + 0.1),
        "stop": 1.0 if timing.stop else 0.0,
        "log_speed": math.log(min(max(speed, 0.05), 3.0)),
        "learned": 1.0 if learned else 0.0,
        "log_peak_inliers": math.log(max(timing.peak_inliers, 1)),
    }


def probability_within_a_frame(
    features: dict[str, float], coefficients: dict[str, float] | None = None
) -> float:
    """The model's probability for ``features`` (`marker_features`)."""
    weights = coefficients or COEFFICIENTS
    z = weights["intercept"] + sum(weights[name] * value for name, value in features.items())
    return 1.0 / (1.0 + math.exp(-z))


def marker_confidence(timing: Any, *, new_frame_s: float, speed: float, learned: bool) -> float:
    """Confidence of a marker timed at full frame rate: P(within one frame of the truth)."""
    features = marker_features(timing, new_frame_s=new_frame_s, speed=speed, learned=learned)
    return round(probability_within_a_frame(features), 3)


def review_guards(timing: Any, *, new_frame_s: float, ref_frame_s: float, speed: float) -> list[str]:
    """Reasons, if any, to send a timed marker to review whatever its modelled probability.

    Args:
        timing: How the marker was timed (`mtbsync.align.refine.MomentTiming`).
        new_frame_s: One frame of the new run (s).
        ref_frame_s: One frame of the reference (s).
        speed: The warp's pace there (reference seconds per new second).
    """
    reasons = []
    if speed < GUARD_SLOW_PACE:
        reasons.append(f"a slow pass ({speed:.2f}x the reference's pace): one place spans many frames")
    if math.isfinite(timing.shift_s) and timing.shift_s / new_frame_s > GUARD_SHIFT_FRAMES:
        reasons.append(f"full-rate timing moved it {timing.shift_s / new_frame_s:.1f} frames from the warp")
    spread = timing.spread_s / new_frame_s if math.isfinite(timing.spread_s) else math.nan
    fine = ref_frame_s / new_frame_s >= 1.5
    limit = GUARD_FINE_SPREAD_FRAMES if fine else GUARD_SPREAD_FRAMES
    if math.isfinite(spread) and spread > limit:
        reasons.append(f"the reference frames around it disagree by {spread:.1f} frames")
    return reasons

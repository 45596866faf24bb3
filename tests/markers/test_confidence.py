"""Marker confidence: a probability that falls when the evidence for the marker's time weakens."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mtbsync.align.refine import MomentTiming, time_moment
from mtbsync.align.warp import Warp
from mtbsync.markers.confidence import (
    marker_confidence,
    marker_features,
    probability_within_a_frame,
    review_guards,
)

FRAME = 1 / 30


def timing(**overrides) -> MomentTiming:
    values = {
        "t_new": 5.0,
        "located": 5,
        "spread_s": 0.2 * FRAME,
        "peak_inliers": 200,
        "shift_s": 0.5 * FRAME,
        "stop": False,
        "method": "peak+zoom",
    }
    values.update(overrides)
    return MomentTiming(**values)


def confidence(t: MomentTiming, speed: float = 1.0, learned: bool = False) -> float:
    return marker_confidence(t, new_frame_s=FRAME, speed=speed, learned=learned)


def test_agreeing_frames_give_a_high_probability() -> None:
    assert 0.8 < confidence(timing()) < 1.0


@pytest.mark.parametrize(
    "weaker",
    [
        {"spread_s": 2.0 * FRAME},
        {"located": 2, "spread_s": math.nan},
        {"stop": True},
        {"shift_s": 6 * FRAME},
    ],
)
def test_weaker_evidence_lowers_it(weaker: dict) -> None:
    assert confidence(timing(**weaker)) < confidence(timing())


def test_a_slow_pass_and_learned_features_lower_it() -> None:
    assert confidence(timing(), speed=0.2) < confidence(timing(), speed=1.0)
    assert confidence(timing(), learned=True) < confidence(timing(), learned=False)


def test_probability_is_a_logistic_of_the_features() -> None:
    features = marker_features(timing(), new_frame_s=FRAME, speed=1.0, learned=False)
    zero = {name: 0.0 for name in ["intercept", *features]}
    assert probability_within_a_frame(features, zero) == pytest.approx(0.5)
    assert 0.0 < probability_within_a_frame(features) < 1.0


def _steady_warp() -> Warp:
    t = np.linspace(0.0, 20.0, 41)
    return Warp(t, t, np.ones(t.size))


def test_time_moment_fits_a_line_through_the_located_frames() -> None:
    warp = _steady_warp()
    frames = [(10.0 + k * FRAME, 10.0 + k * FRAME + 0.004 * (-1) ** k, 150, "peak") for k in range(-2, 3)]
    result = time_moment(frames, 10.0, warp, new_frame_s=FRAME)
    assert result.t_new == pytest.approx(10.0, abs=0.005)
    assert result.located == 5 and not result.stop
    assert result.spread_s < 0.01 and result.peak_inliers == 150


def test_a_stop_at_the_place_takes_the_arrival_not_the_middle_of_the_stop() -> None:
    """The rider stands 2 s at the marker: the reference frames past it are found 2 s later. A
    line through all of them would land a second into the stop."""
    warp = _steady_warp()
    before = [(10.0 + k * FRAME, 10.0 + k * FRAME, 150, "peak") for k in (-2, -1, 0)]
    after = [(10.0 + k * FRAME, 12.0 + k * FRAME, 150, "peak") for k in (1, 2)]
    result = time_moment(before + after, 10.0, warp, new_frame_s=FRAME)
    assert result.stop
    assert result.t_new == pytest.approx(10.0, abs=0.01)
    # The reference moment just past the stop belongs to the stretch after it.
    later = time_moment(before + after, 10.0 + 2 * FRAME, warp, new_frame_s=FRAME)
    assert later.t_new == pytest.approx(12.0 + 2 * FRAME, abs=0.01)


def test_nothing_located_is_not_placed() -> None:
    result = time_moment([], 10.0, _steady_warp(), new_frame_s=FRAME)
    assert math.isnan(result.t_new) and result.located == 0


def test_review_guards_catch_what_the_model_may_miss() -> None:
    assert review_guards(timing(), new_frame_s=FRAME, ref_frame_s=FRAME, speed=1.0) == []
    assert "slow pass" in review_guards(timing(), new_frame_s=FRAME, ref_frame_s=FRAME, speed=0.2)[0]
    moved = review_guards(timing(shift_s=6 * FRAME), new_frame_s=FRAME, ref_frame_s=FRAME, speed=1.0)
    assert "moved it 6.0 frames" in moved[0]
    # 0.7 frames of disagreement is fine at equal rates, not when the new run has twice the rate.
    loose = timing(spread_s=0.7 * FRAME / 2)
    assert review_guards(loose, new_frame_s=FRAME / 2, ref_frame_s=FRAME / 2, speed=1.0) == []
    assert review_guards(loose, new_frame_s=FRAME / 2, ref_frame_s=FRAME, speed=1.0)

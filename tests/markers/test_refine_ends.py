"""Markers just past the covered part: where full-rate timing looks for them."""

from __future__ import annotations

import numpy as np

from mtbsync.align.warp import Warp
from mtbsync.config import SyncConfig
from mtbsync.markers.refine import (
    BEYOND_REACH_S,
    REFINE_MAX_WINDOW_S,
    _believed_past_the_ends,
    _beyond_the_ends,
)


def _warp(speed: float = 0.8) -> Warp:
    """Covers new 2-20 s at ``speed`` reference seconds per new second, from reference 3 s."""
    t_new = np.arange(2.0, 20.01, 0.5)
    return Warp(t_new, 3.0 + speed * (t_new - 2.0), np.ones(t_new.size), meta={"keyframe_fps": 3.0})


def _spans(warp: Warp, ref_times: list[float], new_duration: float = 25.0) -> np.ndarray:
    times = np.asarray(ref_times)
    return _beyond_the_ends(warp, times, warp.to_new(times), SyncConfig(), new_duration)


def test_a_time_just_past_the_end_is_searched_from_the_covered_end_to_past_its_guess() -> None:
    warp = _warp()
    ref_hi = warp.ref_range[1]
    tau = ref_hi + 0.5
    span = _spans(warp, [tau])[0]
    truth = 20.0 + 0.5 / 0.8
    assert span[0] < 20.0 < truth < span[1]  # the pace's guess is inside, with room for a slower rider
    assert span[1] - span[0] <= 2 * REFINE_MAX_WINDOW_S + 1e-9


def test_inside_the_covered_part_and_too_far_past_it_nothing_is_searched() -> None:
    warp = _warp()
    (ref_lo, ref_hi) = warp.ref_range
    spans = _spans(warp, [ref_lo + 1.0, ref_hi + BEYOND_REACH_S + 0.2, ref_lo - BEYOND_REACH_S - 0.2])
    assert np.isnan(spans).all()


def test_the_search_stays_inside_the_new_video() -> None:
    warp = _warp()
    (ref_lo, ref_hi) = warp.ref_range
    tail, head = _spans(warp, [ref_hi + 0.9, ref_lo - 0.9], new_duration=20.6)
    assert tail[1] <= 20.6 and tail[0] < 20.0
    assert head[0] >= 0.0 and head[1] > 2.0 > head[0]
    # A video that ends where the covered part does leaves nothing to search after it.
    assert np.isnan(_spans(warp, [ref_hi + 0.5], new_duration=20.0)[0]).all()


def test_a_stalled_end_is_not_carried_on() -> None:
    flat = Warp(np.array([0.0, 5.0, 10.0]), np.array([0.0, 4.0, 4.0]), np.ones(3), meta={"keyframe_fps": 3.0})
    assert np.isnan(_spans(flat, [4.5])[0]).all()  # the pace before the end is 0: no guess


def test_past_the_ends_only_frames_on_one_line_at_the_ends_pace_are_believed() -> None:
    warp = _warp(speed=0.8)  # 0.8 reference s per new s
    tau = warp.ref_range[1] + 0.4
    ref_frames = tau + np.arange(-2, 3) / 30

    def located(new_times):
        return [(float(r), float(n), 200, "peak") for r, n in zip(ref_frames, new_times, strict=True)]

    passing = 20.5 + (ref_frames - tau) / 0.8
    assert _believed_past_the_ends(located(passing), tau, warp)
    assert not _believed_past_the_ends(located(passing)[:2], tau, warp)  # two frames: no line
    # Standing after the finish: every reference frame "found" in the same few new frames.
    standing = 20.5 + np.array([0.0, 0.04, 0.0, 0.04, 0.0])
    assert not _believed_past_the_ends(located(standing), tau, warp)
    # Five times the end's pace: not this rider passing this place; twice is (the end knots lag).
    assert not _believed_past_the_ends(located(20.5 + (ref_frames - tau) / 4.0), tau, warp)
    assert _believed_past_the_ends(located(20.5 + (ref_frames - tau) / 1.6), tau, warp)

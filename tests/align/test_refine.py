from __future__ import annotations

import numpy as np
import pytest

from mtbsync.align.refine import locate_in_window, refine_reference_times


def test_zoom_places_new_keyframes_between_reference_keyframes() -> None:
    ref_times = np.arange(0, 10, 1 / 3)
    step = np.full(ref_times.size, 0.12)  # zoom per keyframe interval
    true_ref = np.array([2.1, 4.95, 7.2, 5.5, 3.05, 6.0, 1.2])  # < 8 points: no bias estimate
    ref_idx = np.rint(true_ref * 3).astype(int)
    # Reference keyframe ahead of the true place -> positive zoom, proportional to the offset.
    zoom = (ref_times[ref_idx] - true_ref) * 3 * 0.12
    refined = refine_reference_times(
        np.arange(true_ref.size, dtype=float), ref_times, ref_idx, zoom, np.full(true_ref.size, 80.0), step
    )
    assert np.allclose(refined.t_ref, true_ref, atol=1e-6)
    assert refined.refined.all()


def test_locate_in_window_combines_peak_and_zoom_crossing() -> None:
    times = np.arange(0, 1.0, 1 / 30)
    true_t = 0.512
    inliers = 200 * np.exp(-(((times - true_t) / 0.12) ** 2))
    zooms = -0.4 * (times - true_t)
    timing = locate_in_window(times, inliers, zooms)
    assert timing.method == "peak+zoom"
    assert timing.t_new == pytest.approx(true_t, abs=0.25 / 30)


def test_locate_in_window_without_a_match() -> None:
    times = np.arange(0, 1.0, 1 / 30)
    timing = locate_in_window(times, np.full(times.size, 5), np.full(times.size, np.nan))
    assert timing.method == "none" and np.isnan(timing.t_new)


def test_constant_zoom_between_cameras_is_removed() -> None:
    ref_times = np.arange(0, 20, 1 / 3)
    step = np.full(ref_times.size, 0.1)
    offsets = np.tile([-0.15, -0.1, -0.05, 0.0, 0.05, 0.1, 0.15], 5)  # true offsets average out
    ref_idx = np.arange(3, 3 + offsets.size)
    true_ref = ref_times[ref_idx] - offsets
    zoom = offsets * 3 * 0.1 + 0.04  # another lens: everything 4% bigger
    refined = refine_reference_times(
        np.arange(offsets.size, dtype=float), ref_times, ref_idx, zoom, np.full(offsets.size, 50.0), step
    )
    assert refined.zoom_bias == pytest.approx(0.04, abs=1e-9)
    assert np.allclose(refined.t_ref, true_ref, atol=1e-6)

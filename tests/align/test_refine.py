from __future__ import annotations

import numpy as np
import pytest

from mtbsync.align.refine import locate_in_window, refine_reference_times, zoom_at_peaks


def test_zoom_places_new_keyframes_between_reference_keyframes() -> None:
    ref_times = np.arange(0, 10, 1 / 3)
    step = np.full(ref_times.size, 0.12)  # zoom per keyframe interval
    true_ref = np.array([2.1, 4.95, 7.2, 5.5, 3.05, 6.0, 1.2, 8.8, 2.7])
    ref_idx = np.rint(true_ref * 3).astype(int)
    # Reference keyframe ahead of the true place -> positive zoom, proportional to the offset.
    zoom = (ref_times[ref_idx] - true_ref) * 3 * 0.12
    refined = refine_reference_times(np.arange(true_ref.size, dtype=float), ref_times, ref_idx, zoom, step)
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


def test_a_known_zoom_between_cameras_is_removed() -> None:
    ref_times = np.arange(0, 20, 1 / 3)
    step = np.full(ref_times.size, 0.1)
    offsets = np.tile([-0.15, -0.1, -0.05, 0.0, 0.05, 0.1, 0.15], 5)
    ref_idx = np.arange(3, 3 + offsets.size)
    true_ref = ref_times[ref_idx] - offsets
    zoom = offsets * 3 * 0.1 + 0.04  # another lens: everything 4% bigger
    refined = refine_reference_times(
        np.arange(offsets.size, dtype=float), ref_times, ref_idx, zoom, step, zoom_bias=0.04
    )
    assert np.allclose(refined.t_ref, true_ref, atol=1e-6)


def test_zoom_at_peaks_reads_the_zoom_where_views_match_best() -> None:
    times = np.arange(0, 1, 1 / 30)
    windows = []
    for centre in (0.3, 0.5, 0.62, 0.4):
        inliers = 150 * np.exp(-(((times - centre) / 0.1) ** 2))
        windows.append((times, inliers, 0.05 - 0.4 * (times - centre)))
    assert zoom_at_peaks(windows) == pytest.approx(0.05, abs=0.4 / 30)
    assert zoom_at_peaks(windows[:2]) == 0.0  # too few windows to tell


def test_locate_in_window_refuses_a_peak_at_a_cut_or_with_the_wrong_zoom() -> None:
    times = np.arange(0, 1.0, 1 / 30)
    inliers = 200 * np.exp(-(((times - 0.5) / 0.12) ** 2))
    inliers[:15] = 2  # the video cuts in at 0.5 s: the place is before its first trail frame
    zooms = -0.4 * (times - 0.5)
    assert locate_in_window(times, inliers, zooms).method == "cut"
    inliers = 200 * np.exp(-(((times - 0.5) / 0.12) ** 2))
    assert locate_in_window(times, inliers, zooms + 0.3).method == "zoom"
    assert locate_in_window(times[:16], inliers[:16], zooms[:16]).method == "edge"

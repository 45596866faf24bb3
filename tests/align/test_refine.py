from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from mtbsync.align.refine import (
    locate_in_window,
    locate_windows,
    refine_reference_times,
    zoom_at_level,
    zoom_at_peaks,
)


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


def _lean_windows(lens: float, lean_s: float, *, lateral: float = 0.5, centres=(0.3, 0.45, 0.5, 0.62, 0.4)):
    """Windows where the cameras stand level at each centre, and the inliers peak ``lean_s`` later.

    The zoom falls through ``lens`` at the level place (the lenses' own zoom), the epipole's
    along-view offset crosses 0 there; a blurrier new camera matches best a little closer, later.
    """
    times = np.arange(0, 1, 1 / 30)
    windows = []
    for centre in centres:
        inliers = 150 * np.exp(-(((times - centre - lean_s) / 0.15) ** 2))
        zooms = lens - 0.4 * (times - centre)
        along = 6.0 * (centre - times)  # metres ahead of the new camera, 6 m/s
        epipoles = np.stack([np.full(times.size, lateral), np.zeros(times.size), along], axis=1)
        epipoles /= np.linalg.norm(epipoles, axis=1, keepdims=True)
        windows.append((times, inliers, zooms, epipoles))
    return windows


def test_zoom_at_level_reads_the_lenses_zoom_where_the_peaks_lean() -> None:
    windows = _lean_windows(lens=0.1, lean_s=0.05)
    # At the peaks the zoom has fallen by the lean: 0.4 per second x 0.05 s.
    assert zoom_at_peaks([w[:3] for w in windows]) == pytest.approx(0.1 - 0.02, abs=0.4 / 30)
    assert zoom_at_level(windows) == pytest.approx(0.1, abs=0.003)
    assert np.isnan(zoom_at_level(windows[:2]))  # too few windows to tell


def _geometry(windows, *, with_epipoles: bool) -> SimpleNamespace:
    return SimpleNamespace(
        inliers=np.concatenate([w[1] for w in windows]).astype(np.int32),
        log_zoom=np.concatenate([w[2] for w in windows]),
        epipole=np.concatenate([w[3] for w in windows]) if with_epipoles else None,
    )


def test_one_camera_model_has_no_zoom_between_lenses_whatever_the_peaks_read() -> None:
    windows = _lean_windows(lens=0.0, lean_s=0.04)  # peaks read -0.016: under the threshold
    geometry = _geometry(windows, with_epipoles=False)
    found = locate_windows([w[0] for w in windows], geometry, min_inliers=20, with_epipoles=lambda: None)
    assert found.cameras.lens == 0.0 and not found.cameras.differ
    assert found.cameras.at_peaks == pytest.approx(-0.016, abs=0.4 / 30)
    # The zoom crossing (0 at the place) pulls the late peak back: off by about half the lean, not all.
    errors = [t.t_new - c for t, c in zip(found.timings, (0.3, 0.45, 0.5, 0.62, 0.4), strict=True)]
    assert np.all(np.abs(errors) < 0.03)


def test_other_lenses_are_located_with_the_zoom_where_the_cameras_stand_level() -> None:
    windows = _lean_windows(lens=0.12, lean_s=0.05)
    measured = []
    found = locate_windows(
        [w[0] for w in windows],
        _geometry(windows, with_epipoles=False),
        min_inliers=20,
        with_epipoles=lambda: measured.append(True) or _geometry(windows, with_epipoles=True),
    )
    assert measured  # the cameras differ: the pairs were verified again for their epipoles
    assert found.cameras.differ and found.cameras.lens == pytest.approx(0.12, abs=0.003)
    assert all(t.method == "epipole" for t in found.timings)
    errors = [t.t_new - c for t, c in zip(found.timings, (0.3, 0.45, 0.5, 0.62, 0.4), strict=True)]
    assert np.all(np.abs(errors) < 0.005)
    # A second search of a few windows keeps what the first measured.
    again = locate_windows(
        [windows[0][0]],
        _geometry(windows[:1], with_epipoles=True),
        min_inliers=20,
        with_epipoles=lambda: None,
        cameras=found.cameras,
    )
    assert again.cameras == found.cameras

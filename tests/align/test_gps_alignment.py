"""GPS-assisted alignment on synthetic tracks: projection, switchbacks, stops, different trails, offsets."""

from __future__ import annotations

import logging
import math
from types import SimpleNamespace

import numpy as np
import pytest

from mtbsync.align.gps import (
    GpsAlignConfig,
    band_mask,
    calibrate_mapping,
    estimate_track_offset,
    fill_gaps,
    flatten_stops,
    gps_fallback,
    gps_mapping,
    gps_only_warp,
    local_metres,
    project_track,
    reference_path,
    stop_intervals,
)
from mtbsync.align.warp import Warp
from mtbsync.config import SyncConfig
from mtbsync.ingest.track import FIX_NONE, GpsTrack, make_track

ORIGIN = (46.55, 7.98)
R = 6_371_008.8


def switchback(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A trail of 80 m legs joined by hairpins of radius 5 m: legs lie only 10 m apart."""
    grid = np.arange(0.0, 700.0, 0.1)
    leg, turn = 80.0, math.pi * 5.0
    phase = np.mod(grid, leg + turn)
    n = np.floor(grid / (leg + turn))
    direction = np.where(np.mod(n, 2) == 0, 1.0, -1.0)
    heading = np.where(
        phase < leg,
        np.where(direction > 0, math.pi / 2, -math.pi / 2),
        np.where(direction > 0, math.pi / 2, -math.pi / 2) - direction * (phase - leg) / 5.0,
    )
    x = np.concatenate([[0.0], np.cumsum(np.cos(heading[:-1]) * 0.1)])
    y = np.concatenate([[0.0], np.cumsum(np.sin(heading[:-1]) * 0.1)])
    return np.interp(s, grid, x), np.interp(s, grid, y)


def to_track(
    t: np.ndarray,
    s: np.ndarray,
    *,
    error_m: float = 2.5,
    seed: int = 0,
    shift_m: float = 0.0,
    layout=switchback,
    fix: np.ndarray | None = None,
) -> GpsTrack:
    rng = np.random.default_rng(seed)
    x, y = layout(s)
    rho = math.exp(-0.1 / 10.0)
    err = np.zeros((2, t.size))
    err[:, 0] = rng.normal(0, error_m, 2)
    for k in range(1, t.size):
        err[:, k] = rho * err[:, k - 1] + rng.normal(0, error_m * math.sqrt(1 - rho**2), 2)
    x, y = x + err[0] + shift_m, y + err[1]
    lat = ORIGIN[0] + np.degrees(y / R)
    lon = ORIGIN[1] + np.degrees(x / (R * math.cos(math.radians(ORIGIN[0]))))
    return make_track(t, lat, lon, fix=fix, source="test")


def ref_run() -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(0.0, 100.0, 0.1)
    return t, 5.0 * t  # a steady 5 m/s over 500 m: six legs, five hairpins


def new_run() -> tuple[np.ndarray, np.ndarray]:
    """Starts 20 m down the trail, 4 m/s, stands 10-13 s, then 6.5 m/s."""
    t = np.arange(0.0, 80.0, 0.1)
    speed = np.where(t < 10, 4.0, np.where(t < 13, 0.0, 6.5))
    s = 20.0 + np.concatenate([[0.0], np.cumsum(speed[:-1] * 0.1)])
    return t, np.minimum(s, 495.0)


def test_local_metres_scale() -> None:
    x, y = local_metres(np.array([46.55 + 0.001]), np.array([7.98 + 0.001]), ORIGIN)
    assert y[0] == pytest.approx(111.2, abs=0.2)
    assert x[0] == pytest.approx(111.2 * math.cos(math.radians(46.55)), abs=0.2)


def test_reference_path_has_the_trail_length() -> None:
    t, s = ref_run()
    path = reference_path(to_track(t, s, error_m=0.0))
    assert path.length == pytest.approx(s[-1] - s[0], rel=0.05)
    assert np.all(np.diff(path.s) > 0)


def test_projection_through_switchbacks_is_monotone_and_never_jumps_legs() -> None:
    t_ref, s_ref = ref_run()
    path = reference_path(to_track(t_ref, s_ref, seed=1))
    t_new, s_new = new_run()
    proj = project_track(path, to_track(t_new, s_new, seed=2))
    assert np.all(np.diff(proj.s) >= 0)
    truth = np.interp(proj.t, t_new, s_new) - s_ref[0]
    error = np.abs(proj.s - truth)
    # Along-track error follows the two tracks' wandering GPS error (2.5 m each, and the reference
    # path's own length error); a jump to a neighbouring leg, 10 m away across the hairpin, would be
    # an error of 40-80 m.
    assert error.max() < 25.0
    assert np.median(error) < 8.0
    config = GpsAlignConfig()
    # At most the fastest plausible advance per step (plus the refinement onto the next segment).
    assert np.diff(proj.s).max() <= config.max_speed * config.grid_dt + 2 * config.node_spacing_m + 0.5


def test_mapping_by_position_along_the_trail_with_late_start_and_stop() -> None:
    t_ref, s_ref = ref_run()
    t_new, s_new = new_run()
    mapping = gps_mapping(to_track(t_ref, s_ref, seed=3), to_track(t_new, s_new, seed=4))
    assert mapping.same_trail
    assert mapping.near_fraction > 0.95
    truth = np.interp(mapping.t_new, t_new, s_new) / 5.0
    error = np.abs(mapping.t_ref - truth)[mapping.valid]
    assert mapping.valid.mean() > 0.9
    assert np.median(error) < 1.0
    assert np.percentile(error, 95) < 2.5
    # The map's uncertainty is about GPS error over the reference's speed (2.5-4 m / 5 m/s).
    assert 0.3 < float(np.median(mapping.sigma[mapping.valid])) < 2.0
    # Late start: the new run's first moment is 20 m down the trail, 4 s into the reference.
    assert mapping.t_new[mapping.valid][0] < 1.0
    assert mapping.t_ref[mapping.valid][0] == pytest.approx(truth[mapping.valid][0], abs=1.5)
    # During the stop the map stands still.
    still = (mapping.t_new > 10.5) & (mapping.t_new < 12.5) & mapping.valid
    assert np.ptp(mapping.t_ref[still]) < 1.0


def test_tracks_of_different_trails_are_evidence_against() -> None:
    t_ref, s_ref = ref_run()
    t_new, s_new = new_run()
    far = to_track(t_new, s_new, seed=5, shift_m=2500.0)  # the same shape, 2.5 km east
    mapping = gps_mapping(to_track(t_ref, s_ref, seed=6), far)
    assert not mapping.same_trail
    assert mapping.median_distance_m > 1000
    assert not mapping.valid.any()
    assert mapping.summary()["same_trail"] is False


def test_a_long_approach_elsewhere_is_not_a_different_trail() -> None:
    t_ref, s_ref = ref_run()
    t_new, s_new = new_run()
    on_trail = to_track(t_new, s_new, seed=17)
    # Two minutes of the video climbing to the trailhead 500 m away, then the ride.
    t_climb = np.arange(-120.0, 0.0, 0.1)
    climb = to_track(t_climb, np.zeros(t_climb.size), seed=18, shift_m=500.0)
    both = make_track(
        np.concatenate([climb.t, on_trail.t]) + 120.0,
        np.concatenate([climb.lat, on_trail.lat]),
        np.concatenate([climb.lon, on_trail.lon]),
        source="test",
    )
    mapping = gps_mapping(to_track(t_ref, s_ref, seed=19), both)
    assert mapping.near_fraction < 0.5
    assert mapping.same_trail
    assert mapping.valid[mapping.t_new > 125].mean() > 0.9


def test_band_mask_restricts_rows_with_gps_only() -> None:
    t_ref, s_ref = ref_run()
    t_new, s_new = new_run()
    new_track = to_track(t_new[t_new < 40], s_new[t_new < 40], seed=8)  # GPS only for the first 40 s
    mapping = gps_mapping(to_track(t_ref, s_ref, seed=7), new_track)
    new_times, ref_times = np.arange(0.0, 80.0, 1 / 3), np.arange(0.0, 100.0, 1 / 3)
    allowed, has_gps = band_mask(mapping, new_times, ref_times)
    assert has_gps[new_times < 39].all() and not has_gps[new_times > 41].any()
    assert allowed[~has_gps].all()  # no GPS: vision alone decides
    assert allowed[has_gps].mean() < 0.2  # a few seconds of 100
    truth = (np.interp(new_times, t_new, s_new) / 5.0)[has_gps]
    nearest = np.abs(ref_times[None, :] - truth[:, None]).argmin(axis=1)
    assert allowed[np.nonzero(has_gps)[0], nearest].all()  # the true pair is always inside


@pytest.mark.parametrize("clock_error_s", [0.0, 4.0, -9.0])
def test_calibration_moves_a_mistimed_map_onto_the_look_alike_pairs(clock_error_s: float) -> None:
    t_ref, s_ref = ref_run()
    t_new, s_new = new_run()
    mistimed = to_track(t_new, s_new, seed=14).shifted(clock_error_s)
    mapping = gps_mapping(to_track(t_ref, s_ref, seed=15), mistimed)
    new_times, ref_times = np.arange(0.0, 80.0, 1 / 3), np.arange(0.0, 100.0, 1 / 3)
    # Appearance: noise, plus a ridge where the keyframes show the same place.
    rng = np.random.default_rng(16)
    similarity = rng.normal(1.0, 0.5, (new_times.size, ref_times.size))
    truth = np.interp(new_times, t_new, s_new) / 5.0
    similarity[np.arange(new_times.size), np.abs(ref_times[None, :] - truth[:, None]).argmin(axis=1)] += 3.0
    moved, calibration = calibrate_mapping(mapping, new_times, ref_times, similarity)
    assert calibration.applied == (clock_error_s != 0.0)
    assert calibration.shift_s == pytest.approx(clock_error_s, abs=0.5)
    t_map, _, has = moved.at(new_times)
    assert np.median(np.abs(t_map[has] - truth[has])) < 1.0


def test_fill_gaps_adds_gps_knots_but_never_moves_verified_ones() -> None:
    t_ref, s_ref = ref_run()
    t_new, s_new = new_run()
    mapping = gps_mapping(to_track(t_ref, s_ref, seed=9), to_track(t_new, s_new, seed=10))
    truth = lambda tn: np.interp(tn, t_new, s_new) / 5.0  # noqa: E731
    verified_t = np.array([20.0, 21.0, 22.0, 40.0, 41.0, 42.0])  # nothing verified from 22 s to 40 s
    knots_t = np.concatenate([verified_t[:3], [31.0], verified_t[3:]])
    knots_r = truth(knots_t)
    conf = np.array([0.9, 0.9, 0.9, 0.0, 0.9, 0.9, 0.9])
    warp = Warp(knots_t, knots_r, conf, ok=True, metrics={})
    filled, added = fill_gaps(warp, mapping)
    assert added > 10
    kept = np.isin(filled.t_new, verified_t)
    np.testing.assert_allclose(filled.t_ref[kept], truth(verified_t))
    assert np.all(filled.confidence[~kept] == pytest.approx(GpsAlignConfig().fill_confidence))
    assert filled.confidence[filled.t_new == 31.0] == pytest.approx([0.35])  # the midpoint gave way
    assert np.all(np.diff(filled.t_ref) >= 0)
    assert np.max(np.abs(filled.t_ref[~kept] - truth(filled.t_new[~kept]))) < 2.5
    # Not aligned stays not aligned: GPS alone never makes an alignment.
    failed = Warp(knots_t, knots_r, conf, ok=False, reason="too few verified matches")
    assert fill_gaps(failed, mapping) == (failed, 0)


def test_stops_from_speed_and_holding_the_path_still() -> None:
    t_new, s_new = new_run()
    stops = stop_intervals(to_track(t_new, s_new, error_m=1.0, seed=11))
    assert len(stops) == 1
    assert stops[0][0] == pytest.approx(10.0, abs=1.0)
    assert stops[0][1] == pytest.approx(13.0, abs=1.0)
    pair_t = np.arange(9.0, 14.0, 0.5)
    noisy = 6.0 + np.random.default_rng(0).normal(0, 0.2, pair_t.size)
    held, changed = flatten_stops(pair_t, noisy, stops)
    inside = (pair_t >= stops[0][0] + 0.3) & (pair_t <= stops[0][1] - 0.3)
    assert changed > 0 and np.ptp(held[inside]) == 0
    np.testing.assert_array_equal(held[~inside], noisy[~inside])


def test_no_fix_tracks_are_not_usable() -> None:
    t, s = ref_run()
    track = to_track(t, s, fix=np.full(t.size, FIX_NONE))
    assert not track.has_fix
    assert len(reference_path(track)) == 0
    mapping = gps_mapping(track, track)
    assert not mapping.valid.any() and not mapping.same_trail


def test_offset_is_estimated_from_a_speed_like_signal_with_stops() -> None:
    t_new, s_new = new_run()
    track = to_track(t_new, s_new, error_m=1.5, seed=12)
    # The video's motion signal: picture change grows with speed (not linearly), with noise.
    true_offset = 3.0  # the track's first point is 3 s into the video
    video_t = np.arange(0.0, 85.0, 1 / 3)
    speed = np.interp(video_t - true_offset, t_new, np.gradient(s_new, t_new), left=5.0, right=6.5)
    speed = np.maximum(speed, 0.0)
    motion = 4.0 + 3.0 * np.sqrt(speed) + np.random.default_rng(1).normal(0, 0.5, video_t.size)
    estimate = estimate_track_offset(track, video_t, motion, method="visual motion")
    assert estimate is not None and estimate.applied
    assert estimate.offset_s == pytest.approx(true_offset, abs=0.5)
    assert "applied" in estimate.describe()


def test_a_steady_pace_gives_no_confident_offset() -> None:
    t_ref, s_ref = ref_run()
    track = to_track(t_ref, s_ref, error_m=2.5, seed=13)
    video_t = np.arange(0.0, 100.0, 1 / 3)
    motion = 10.0 + np.random.default_rng(2).normal(0, 1.0, video_t.size)  # nothing to line up
    estimate = estimate_track_offset(track, video_t, motion, method="visual motion")
    assert estimate is not None
    assert not estimate.applied
    assert "NOT applied" in estimate.describe()


def _failed_vision_warp() -> Warp:
    return Warp(
        np.zeros(0), np.zeros(0), np.zeros(0), ok=False, reason="too few verified matches", metrics={}
    )


def test_gps_alone_aligns_when_vision_cannot_and_asks_for_review() -> None:
    from mtbsync.markers import Marker, transfer_markers

    t_ref, s_ref = ref_run()
    t_new, s_new = new_run()
    mapping = gps_mapping(to_track(t_ref, s_ref, seed=3), to_track(t_new, s_new, seed=4))
    warp = gps_only_warp(
        mapping, _failed_vision_warp(), new_duration=80.0, ref_duration=100.0, min_coverage=0.2
    )
    assert warp is not None and warp.ok
    assert warp.metrics["model"] == "gps"
    assert "GPS alone" in warp.reason and "too few verified matches" in warp.reason
    assert 0.1 < warp.metrics["accuracy_s"] < 2.0
    assert np.all(warp.confidence < 0.6)
    # Accurate to the map's uncertainty, not to a frame.
    inside = (t_new > 1.0) & (t_new < 75.0)
    truth = s_new[inside] / 5.0
    error = np.abs(warp.to_ref(t_new[inside]) - truth)
    assert np.nanmedian(error) < 1.0
    placed = transfer_markers([Marker("hairpin", 40.0)], warp)
    assert placed[0].t_new is not None and placed[0].needs_review
    assert "GPS alone" in placed[0].comment


def test_gps_alone_never_aligns_different_trails() -> None:
    t_ref, s_ref = ref_run()
    t_new, s_new = new_run()
    far = to_track(t_new, s_new, seed=5, shift_m=2500.0)
    mapping = gps_mapping(to_track(t_ref, s_ref, seed=6), far)
    assert (
        gps_only_warp(mapping, _failed_vision_warp(), new_duration=80, ref_duration=100, min_coverage=0.2)
        is None
    )


def test_the_gps_fallback_of_two_indexes_aligns_by_gps_or_keeps_the_vision_warp(caplog) -> None:
    t_ref, s_ref = ref_run()
    t_new, s_new = new_run()
    new, ref = SimpleNamespace(video={"duration": 80.0}), SimpleNamespace(video={"duration": 100.0})
    mapping = gps_mapping(to_track(t_ref, s_ref, seed=3), to_track(t_new, s_new, seed=4))
    vision = _failed_vision_warp()
    with caplog.at_level(logging.WARNING, logger="mtbsync"):
        warp = gps_fallback(mapping, vision, new, ref, SyncConfig())
    assert warp is not vision and warp.ok and warp.meta["model"] == "gps"
    assert "too few verified matches" in warp.meta["model_reason"]
    assert caplog.messages == [warp.reason]
    far = gps_mapping(to_track(t_ref, s_ref, seed=6), to_track(t_new, s_new, seed=5, shift_m=2500.0))
    assert gps_fallback(far, vision, new, ref, SyncConfig()) is vision

from __future__ import annotations

import numpy as np
import pytest

from mtbsync.align.fit import fit_warp, pin_warp
from mtbsync.align.warp import Warp
from mtbsync.config import WarpGates


def _true_warp(t: np.ndarray) -> np.ndarray:
    # 1.3x faster, braking to a 2 s stop (0.5 s cosine ramps), then 0.7x: a physical speed profile.
    grid = np.linspace(0, 30, 30001)
    ramp_down = np.clip((grid - 9.5) / 0.5, 0, 1)
    ramp_up = np.clip((grid - 12.0) / 0.5, 0, 1)
    speed = np.where(
        grid < 12.0, 1.3 * 0.5 * (1 + np.cos(np.pi * ramp_down)), 0.7 * 0.5 * (1 - np.cos(np.pi * ramp_up))
    )
    position = 3 + np.concatenate([[0], np.cumsum(0.5 * (speed[1:] + speed[:-1]) * np.diff(grid))])
    return np.interp(t, grid, position)


def test_fit_recovers_a_noisy_warp_and_drops_outliers() -> None:
    rng = np.random.default_rng(1)
    t_new = np.arange(0, 25, 1 / 3)
    t_ref = _true_warp(t_new) + rng.normal(0, 0.03, t_new.size)
    t_ref[[10, 40]] += 4.0  # two wrong matches
    warp = fit_warp(
        t_new,
        t_ref,
        np.full(t_new.size, 100),
        np.ones(t_new.size, bool),
        gates=WarpGates(),
        new_duration=25,
        ref_duration=40,
        path_points=t_new.size,
    )
    assert warp.ok, warp.reason
    assert warp.metrics["outliers"] >= 2
    grid = np.linspace(0.5, 24.5, 200)
    assert np.max(np.abs(warp.to_ref(grid) - _true_warp(grid))) < 0.1
    stop_level = _true_warp(np.array([11.0]))[0]
    assert warp.to_new(stop_level - 0.05)[0] == pytest.approx(9.9, abs=0.25)


def test_gates_fail_on_scattered_pairs() -> None:
    rng = np.random.default_rng(2)
    t_new = np.arange(0, 30, 1 / 3)
    t_ref = rng.uniform(0, 30, t_new.size)
    verified = rng.uniform(size=t_new.size) < 0.2
    warp = fit_warp(
        t_new,
        t_ref,
        np.full(t_new.size, 15),
        verified,
        gates=WarpGates(),
        new_duration=30,
        ref_duration=30,
        path_points=t_new.size,
    )
    assert not warp.ok
    assert "verified" in warp.reason or "residual" in warp.reason


def test_too_few_points_is_not_aligned() -> None:
    warp = fit_warp(
        np.array([1.0]),
        np.array([2.0]),
        np.array([50]),
        np.array([True]),
        gates=WarpGates(),
        new_duration=10,
        ref_duration=10,
        path_points=1,
    )
    assert not warp.ok and warp.is_empty


def test_pin_warp_passes_through_anchors() -> None:
    t_new = np.arange(0, 20, 1 / 3)
    warp = fit_warp(
        t_new,
        2 + t_new,
        np.full(t_new.size, 100),
        np.ones(t_new.size, bool),
        gates=WarpGates(),
        new_duration=20,
        ref_duration=22,
        path_points=t_new.size,
    )
    pinned = pin_warp(warp, np.array([5.05, 12.0]), np.array([7.2, 13.9]))
    assert pinned.to_new(7.2)[0] == pytest.approx(5.05, abs=1e-6)
    assert pinned.to_ref(12.0)[0] == pytest.approx(13.9, abs=1e-6)
    assert np.all(np.diff(pinned.t_ref) >= 0)
    assert pinned.metrics["anchors"] == 2


def test_pinned_anchor_is_not_pulled_by_a_later_lower_knot() -> None:
    # Knots just after the anchor sit a hair below it (timing noise): the anchor must still be where
    # the new run first reaches its reference time.
    warp = Warp([16.32, 17.76, 18.72, 19.2, 20.0], [14.5, 15.13, 15.43, 15.5, 16.0], [1.0] * 5)
    pinned = pin_warp(warp, np.array([18.814]), np.array([15.509]))
    assert pinned.to_new(15.509)[0] == pytest.approx(18.814, abs=1e-6)
    assert np.all(np.diff(pinned.t_ref) >= 0)


def test_pinned_anchor_overrules_an_earlier_knot_above_it() -> None:
    # A keyframe knot just before the anchor but a little ahead in reference time must not flatten
    # the warp in front of the anchor (the marker would land at the knot, not at the anchor).
    warp = Warp([22.02, 22.52, 23.02, 23.52, 24.02], [14.81, 14.95, 15.37, 15.43, 15.71], [1.0] * 5)
    pinned = pin_warp(warp, np.array([23.283]), np.array([15.340]))
    assert pinned.to_new(15.340)[0] == pytest.approx(23.283, abs=1e-6)

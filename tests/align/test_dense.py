"""The dense pass's settings."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from mtbsync.align.dense import drop_knots_between, plan_dense_warp, retry_predictions
from mtbsync.align.warp import Warp
from mtbsync.config import SyncConfig
from mtbsync.errors import ConfigError


def test_an_unknown_dense_setting_is_refused() -> None:
    warp = Warp(np.array([0.0, 1.0]), np.array([0.0, 1.0]), np.ones(2))
    with pytest.raises(ConfigError, match="dense must be auto, on or off"):
        plan_dense_warp(warp, None, "ref.mp4", replace(SyncConfig(), dense="maybe"))


def test_keyframes_not_located_are_searched_again_where_their_neighbours_put_them() -> None:
    t_new = np.arange(8) * 0.5
    truth = 1.2 * t_new + 0.3
    t_ref = truth.copy()
    t_ref[[3, 4]] = np.nan  # not found around the warp's estimate
    found = np.isfinite(t_ref)
    found[6] = False  # located, but inconsistent with its neighbours
    predicted = truth.copy()
    predicted[[3, 4]] += 0.3  # the keyframe warp was off by more than the window reaches
    predicted[6] += 0.01  # as good as a new estimate: searching again would repeat the search
    retry, again = retry_predictions(t_new, t_ref, found, predicted, half_window=0.25)
    assert retry.tolist() == [3, 4]
    assert np.allclose(again, truth[[3, 4]])


def test_estimates_beyond_the_located_keyframes_follow_the_nearest_two_but_not_far() -> None:
    t_new = np.arange(10) * 0.5
    t_ref = np.where((t_new >= 1.0) & (t_new <= 2.0), 2.0 * t_new, np.nan)
    found = np.isfinite(t_ref)
    predicted = 2.0 * t_new + 0.5  # every estimate 0.5 s off
    retry, again = retry_predictions(t_new, t_ref, found, predicted, half_window=0.25, max_reach_s=1.0)
    assert retry.tolist() == [0, 1, 5, 6]  # up to 1 s beyond either end
    assert np.allclose(again, 2.0 * t_new[retry])
    none, _ = retry_predictions(t_new, np.full(10, np.nan), np.zeros(10, bool), predicted, 0.25)
    assert none.size == 0  # nothing located: nothing to place them from


def test_keyframe_knots_between_close_located_keyframes_give_way() -> None:
    knots = np.arange(0.0, 6.01, 0.5)
    warp = Warp(knots, knots + 0.1 * np.sin(knots), np.ones(knots.size), ok=True)
    located = np.array([0.0, 1.0, 1.5, 4.5])  # 1.0-1.5 close together, 1.5-4.5 a long gap
    thinned = drop_knots_between(warp, located, max_gap_s=1.1)
    assert 0.5 not in thinned.t_new  # between 0 and 1 s, located 1 s apart: gives way
    assert {2.0, 2.5, 3.0, 3.5, 4.0} <= set(thinned.t_new.tolist())  # the long gap keeps its knots
    assert {0.0, 1.0, 1.5, 4.5, 5.0, 5.5, 6.0} <= set(thinned.t_new.tolist())  # the located and the ends
    assert thinned.ok and np.array_equal(thinned.t_ref, thinned.t_new + 0.1 * np.sin(thinned.t_new))
